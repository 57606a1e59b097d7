"""Peers for side-by-side benchmarks: llama.cpp's own ``llama-server`` (and tools), built here,
and llama-cpp-python's own server (``python -m llama_cpp.server``).

llama.cpp's tools are built from the llama.cpp sources vendored in the
llama-cpp-python sdist we pin, with the same no-AMX flags as our wheel
(``scripts/build_llama.py``), into ``~/.cache/codespark/peers/<key>/``.
llama-cpp-python's server runs on our installed wheel; its two extra
dependencies are installed beside it, outside our environment.  Benchmarks
set peers up on first use; CI never does.

    python benchmarks/peers.py   # build (or find) llama-server and print its path
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.build_llama import VERSION, cache_dir, cmake_args, cpu_flags

from benchmarks.harness import free_port, http_process


def llama_tool(name: str = "llama-server") -> Path:
    """Path to a built llama.cpp tool (building it the first time, ~5 min on 2 cores)."""
    args = [a for a in cmake_args(cpu_flags()) if not a.startswith("-DLLAVA")]
    key = hashlib.sha256(" ".join([VERSION, *args]).encode()).hexdigest()[:16]
    out = cache_dir().parent / "peers" / key
    binary = out / "build" / "bin" / name
    if binary.exists():
        return binary
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "src").exists():
        _unpack_sdist(out / "src")
    source = next((out / "src").glob("llama_cpp_python-*")) / "vendor" / "llama.cpp"
    build = out / "build"
    subprocess.run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DBUILD_SHARED_LIBS=OFF",
            *args,
        ],
        check=True,
    )
    subprocess.run(["cmake", "--build", str(build), "--target", name, "-j", str(os.cpu_count() or 2)], check=True)
    return binary


def _unpack_sdist(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                tmp,
                f"llama-cpp-python=={VERSION}",
            ],
            check=True,
        )
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(dest, filter="data")


def llama_server(model: Path, extra: list[str], log: Path, n_ctx: int = 8192) -> AbstractContextManager[str]:
    """Run llama-server on ``model`` with ``extra`` flags; yield its base URL."""
    port = free_port()
    cmd = [
        str(llama_tool()),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-c",
        str(n_ctx),
        "-t",
        str(os.cpu_count() or 2),
        "-np",
        "1",
        *extra,
    ]
    return http_process(cmd, f"http://127.0.0.1:{port}", log, timeout_s=300)


# llama-cpp-python's ``[server]`` extra, less what our environment already has (pinned as tested).
PY_SERVER_DEPS = ("sse-starlette==3.7.0", "starlette-context==0.5.1")


def llama_cpp_python_server(model: Path, log: Path, n_ctx: int = 8192) -> AbstractContextManager[str]:
    """Run ``python -m llama_cpp.server`` on ``model`` (2 threads, flash attention, as ours); yield its URL."""
    extra = cache_dir().parent / "peers" / "llama-cpp-server"
    if not (extra / "sse_starlette").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(extra), *PY_SERVER_DEPS],
            check=True,
        )
    port = free_port()
    threads = str(os.cpu_count() or 2)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_ctx", str(n_ctx)]
    cmd += ["--n_threads", threads, "--n_threads_batch", threads, "--flash_attn", "true"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(extra)}
    return http_process(cmd, f"http://127.0.0.1:{port}", log, env, timeout_s=300, health="/v1/models")


if __name__ == "__main__":
    print(llama_tool())
