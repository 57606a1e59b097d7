"""The privacy guard end to end: a real ``codespark serve`` on the real 0.5B, a real fake upstream,
the official ``openai`` client, and the zero-retention check over every file the server wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from benchmarks import secret_corpus as corpus

from codespark.config import default_cache_dir
from tests.fake_upstream import running_upstream
from tests.integration.conftest import launch, stop

pytestmark = pytest.mark.integration

SECRET = next(p for p in corpus.generate(per_format=1, seed=3) if p.fmt == "stripe_key")


def codespark(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codespark", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env={**os.environ, **(env or {})},
    )


def test_serving_beyond_loopback_without_a_key_is_refused() -> None:
    proc = codespark("serve", "--host", "0.0.0.0", "--port", "0")
    assert proc.returncode == 2
    assert "without an API key" in proc.stderr and "codespark keys new" in proc.stderr


def test_redact_dry_run(tmp_path: Path) -> None:
    path = tmp_path / "settings.py"
    path.write_text(SECRET.text)
    table = codespark("redact", str(path))
    assert table.returncode == 0, table.stderr
    assert "1 value(s) would be redacted" in table.stdout and SECRET.value not in table.stdout
    shown = codespark("redact", "-", "--show", stdin=SECRET.text)
    assert shown.returncode == 0 and SECRET.value not in shown.stdout and "<SECRET_1>" in shown.stdout
    env_file = tmp_path / ".env"
    env_file.write_text("A=1\n")
    assert "never-send" in codespark("redact", str(env_file)).stderr


def _files_written_since(roots: list[Path], since: float) -> Iterator[Path]:
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime >= since:
                    yield path
            except OSError:
                continue


def test_full_session_through_the_guard_leaves_no_content_on_disk(tmp_path: Path) -> None:
    canary = f"zq_canary_{uuid.uuid4().hex}"
    work = tmp_path / "cwd"
    work.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    started = time.time() - 1
    with running_upstream() as upstream:
        env = {
            "CODESPARK_CODEX_MODEL": "none",
            "CODESPARK_N_CTX": "2048",
            "CODESPARK_LOG_LEVEL": "debug",
            "CODESPARK_UPSTREAMS": json.dumps([{"name": "gpu", "base_url": upstream.base_url, "model": "m"}]),
            "CODESPARK_CODEX_UPSTREAM": "gpu",
            "TMPDIR": str(tmp),
        }
        server = launch(env, tmp_path / "server.log", cwd=work)
        client = openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0, timeout=300)
        try:
            content = f"def {canary}():\n    key = '{SECRET.value}'\n"
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": content}], max_tokens=64
            )
            answer = raw.parse().choices[0].message.content
            assert answer == content  # the fake upstream echoes; the guard restored the key
            assert raw.headers["x-codespark-engine"] == "upstream:gpu"
            assert SECRET.value not in upstream.all_bytes().decode() and canary in upstream.all_bytes().decode()

            # The real model, locally: chat, FIM and a plain completion, all carrying the canary.
            local = client.chat.completions.create(
                model="spark", messages=[{"role": "user", "content": f"Name a use for {canary}."}], max_tokens=8
            )
            assert local.choices[0].message.content
            fim = httpx.post(
                server.base + "/infill",
                json={"input_prefix": f"def {canary}(a, b):\n    return ", "input_suffix": "\n", "n_predict": 8},
                timeout=300,
            )
            assert fim.status_code == 200, fim.text
            client.completions.create(model="spark", prompt=f"# {canary}\nimport", max_tokens=4)
        except BaseException:
            stop(server)
            raise
    try:
        # The upstream is gone: codex traffic falls back to the local model, visibly.
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": f"Say hi to {canary}."}], max_tokens=8
        )
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-codespark-engine"] == "spark"
        assert "gpu" in raw.headers["x-codespark-fallback"]
        assert 'codespark_upstream_fallbacks_total{upstream="gpu"} 1.0' in httpx.get(server.base + "/metrics").text
    finally:
        stop(server)

    roots = [tmp_path, default_cache_dir(), Path.home()]
    written = list(_files_written_since(roots, started))
    assert tmp_path / "server.log" in written  # the scan does see the server's own log
    leaks = [
        str(path)
        for path in written
        if path.stat().st_size < 50 * 2**20
        and (canary.encode() in path.read_bytes() or SECRET.value.encode() in path.read_bytes())
    ]
    assert leaks == []
