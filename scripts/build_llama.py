"""Build (once) and cache a llama-cpp-python wheel tuned for this CPU, without AMX.

Why this exists: a default llama.cpp build uses ``-march=native``.  On CPUs that
advertise AMX, that compiles llama.cpp's AMX kernels, which crash in
``ggml_backend_amx_mul_mat`` on the machines we run on (see README, "Build").
We build with ``GGML_NATIVE=OFF`` and switch on exactly the SIMD extensions the
CPU reports, with every ``GGML_AMX_*`` option off.  pip caches wheels by version
only, not by ``CMAKE_ARGS``, so the wheel is kept in a cache directory keyed by
the version and the flags: a changed flag gets a fresh build, an unchanged one
is never rebuilt.

Standard library only: it runs before the project is installed.

Usage: python scripts/build_llama.py [--print-args]   (prints the wheel path)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "0.3.36"

# /proc/cpuinfo flag -> ggml CMake option.  Order matters only for readability.
_FLAG_OPTIONS: tuple[tuple[str, str], ...] = (
    ("avx", "GGML_AVX"),
    ("avx2", "GGML_AVX2"),
    ("fma", "GGML_FMA"),
    ("f16c", "GGML_F16C"),
    ("bmi2", "GGML_BMI2"),
    ("avx_vnni", "GGML_AVX_VNNI"),
    ("avx512f", "GGML_AVX512"),
    ("avx512vbmi", "GGML_AVX512_VBMI"),
    ("avx512_vnni", "GGML_AVX512_VNNI"),
    ("avx512_bf16", "GGML_AVX512_BF16"),
)

_FIXED_ARGS: tuple[str, ...] = (
    "-DGGML_NATIVE=OFF",
    "-DGGML_AMX_TILE=OFF",
    "-DGGML_AMX_INT8=OFF",
    "-DGGML_AMX_BF16=OFF",
    "-DLLAVA_BUILD=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)


def cpu_flags() -> set[str]:
    """Return the CPU feature flags of the first core (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cmake_args(flags: set[str]) -> list[str]:
    """CMake arguments for this CPU: explicit SIMD options, never AMX.

    ``CODESPARK_CMAKE_EXTRA`` (space-separated) adds options, for experiments.
    """
    args = list(_FIXED_ARGS)
    for flag, option in _FLAG_OPTIONS:
        args.append(f"-D{option}={'ON' if flag in flags else 'OFF'}")
    args += os.environ.get("CODESPARK_CMAKE_EXTRA", "").split()
    return args


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codespark" / "wheels"


def ensure_wheel() -> Path:
    """Return the path of a built wheel, building it first if needed."""
    args = cmake_args(cpu_flags())
    key = hashlib.sha256(" ".join([VERSION, *args]).encode()).hexdigest()[:16]
    out = cache_dir() / key
    wheels = sorted(out.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[-1]
    env = dict(os.environ)
    env["CMAKE_ARGS"] = " ".join(args)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    print(
        f"Building llama-cpp-python {VERSION} from source (about 10 minutes on 2 cores, once per machine).\n"
        f"CMAKE_ARGS={env['CMAKE_ARGS']}",
        file=sys.stderr,
        flush=True,
    )
    # Build into a scratch directory and rename it into place only when a wheel is
    # there, so an interrupted build never leaves a directory that looks finished.
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=out.parent))
    try:
        # stdout is the script's answer (one wheel path): everything pip prints,
        # progress and index notes included, goes to stderr.
        subprocess.run(
            [
                *pip_command(),
                "wheel",
                "--no-deps",
                "--no-cache-dir",
                "--no-binary",
                "llama-cpp-python",
                "-w",
                str(scratch),
                f"llama-cpp-python=={VERSION}",
            ],
            check=True,
            env=env,
            stdout=sys.stderr,
        )
        if not sorted(scratch.glob("llama_cpp_python-*.whl")):
            raise SystemExit(f"pip wheel finished but left no wheel in {scratch}")
        (scratch / "CMAKE_ARGS").write_text(env["CMAKE_ARGS"] + "\n")
        if out.exists():
            shutil.rmtree(out)
        scratch.rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(out.glob("llama_cpp_python-*.whl"))[-1]


def pip_command() -> list[str]:
    """The pip to build with; ``CODESPARK_PIP`` (space-separated) replaces it, for tests."""
    override = os.environ.get("CODESPARK_PIP", "").split()
    return override or [sys.executable, "-m", "pip"]


def main() -> None:
    if "--print-args" in sys.argv[1:]:
        print(" ".join(cmake_args(cpu_flags())))
        return
    print(ensure_wheel())


if __name__ == "__main__":
    main()
