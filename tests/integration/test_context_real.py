"""Repo context end to end: a real ``codespark serve`` on a real git repo, the real 0.5B, and a
Tabby-shaped request as Tabby's editor agent sends it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import Server, launch, stop
from tests.repo_fixture import make_repo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = make_repo(tmp_path_factory.mktemp("ctx") / "repo")
    env = {"CODESPARK_CODEX_MODEL": "none", "CODESPARK_N_CTX": "4096", "CODESPARK_REPO_DIR": str(root)}
    server = launch(env, tmp_path_factory.mktemp("ctx-log") / "server.log")
    yield server
    stop(server)


def test_tabby_request_on_the_real_model_uses_the_other_files_definition(repo_server: Server) -> None:
    body = {
        "language": "python",
        "segments": {
            "prefix": "from shop.net import Client\n\n\ndef ship(order_id: int) -> None:\n    client = Client(",
            "suffix": ")\n",
            "filepath": "shop/shipping.py",
        },
        "temperature": 0,
        "debug_options": {"return_snippets": True},
    }
    deadline = time.monotonic() + 60
    while True:  # the index builds in the background after start
        r = httpx.post(repo_server.base + "/v1/completions", json=body, timeout=300)
        assert r.status_code == 200, r.text
        snippets = r.json()["debug_data"]["snippets"]
        if snippets or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out = r.json()
    assert out["choices"][0]["text"].strip()  # the model answered
    client = next(s for s in snippets if s["reason"] == "definition of Client")
    assert client["filepath"] == "shop/net/client.py" and "def __init__(self, base_url: str" in client["body"]


def test_infill_with_filename_gets_repo_context(repo_server: Server) -> None:
    r = httpx.post(
        repo_server.base + "/infill",
        json={
            "input_prefix": "from shop.pricing import total_price\n\n\n"
            "def bill(items: list[int]) -> float:\n    return ",
            "input_suffix": "\n",
            "filename": "shop/billing.py",
            "n_predict": 24,
            "debug": True,
        },
        timeout=300,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert any(s["reason"] == "definition of total_price" for s in body["debug_data"]["snippets"])
    assert body["tokens_evaluated"] > 60  # the definition is in the prompt, not just the few lines sent
    assert body["content"].strip()
