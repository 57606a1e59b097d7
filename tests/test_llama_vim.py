"""llama.vim's whole /infill request, replayed as the plugin sends it (ggml-org/llama.vim, autoload/llama.vim,
``llama#fim``: its fields, ring chunks in ``input_extra`` with their ``time``, the typed text in ``prompt``),
and the fields its info line reads back (``response_fields`` with ``timings/...`` keys)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from codespark.config import Settings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.fim import FimStops
from codespark.engine.loader import Engines
from codespark.server.app import create_app

RESPONSE_FIELDS = [
    "content",
    "timings/prompt_n",
    "timings/prompt_ms",
    "timings/prompt_per_token_ms",
    "timings/prompt_per_second",
    "timings/predicted_n",
    "timings/predicted_ms",
    "timings/predicted_per_token_ms",
    "timings/predicted_per_second",
    "truncated",
    "tokens_cached",
]


def llama_vim_request(prefix: str, middle: str, suffix: str, indent: int) -> dict[str, object]:
    return {
        "id_slot": 0,
        "input_prefix": prefix,
        "input_suffix": suffix,
        "input_extra": [{"text": "def helper():\n    return 1\n", "time": 1733000000.5, "filename": "util.py"}],
        "prompt": middle,
        "n_predict": 128,
        "n_indent": indent,
        "top_k": 40,
        "top_p": 0.99,
        "stream": False,
        "samplers": ["top_k", "top_p", "infill"],
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 3000,
        "response_fields": RESPONSE_FIELDS,
    }


@pytest.fixture
def backend() -> FakeBackend:
    # The answer goes on past the block the cursor is in (a dedented line): n_indent must end it there.
    return FakeBackend(replies={"def area(": "w * h\n    # done\nprint(area(2, 3))"})


@pytest.fixture
def client(backend: FakeBackend) -> Iterator[TestClient]:
    engine = Engine(backend)
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    with TestClient(create_app(Settings(fim_block_stops=False), engines), base_url="http://localhost") as c:
        yield c


def test_the_whole_request_is_understood_and_answered_in_its_fields(
    client: TestClient, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="codespark.server")
    body = llama_vim_request("def area(w, h):\n", "    return ", "\n", indent=4)
    r = client.post("/infill", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == set(RESPONSE_FIELDS)  # only what was asked, nested ones flattened
    assert out["content"] == "w * h\n    # done"  # the dedented line is not part of the answer (the suffix has the \n)
    assert out["timings/predicted_n"] > 0 and out["timings/prompt_n"] > 0 and out["truncated"] is False
    assert isinstance(out["tokens_cached"], int) and out["timings/prompt_per_token_ms"] >= 0
    assert "ignoring unknown fields" not in caplog.text  # every field llama.vim sends is known
    assert "<|file_sep|>util.py\ndef helper()" in backend.prompts[-1]  # the ring chunk is context


def test_without_n_indent_the_answer_goes_on(client: TestClient) -> None:
    body = {**llama_vim_request("def area(w, h):\n", "    return ", "\n", indent=0), "response_fields": None}
    assert client.post("/infill", json=body).json()["content"] == "w * h\n    # done\nprint(area(2, 3))"


def test_the_ring_warm_up_request_is_answered_empty(client: TestClient) -> None:
    warm = {"id_slot": 0, "input_prefix": "", "input_suffix": "", "prompt": "", "n_predict": 0,
            "input_extra": [{"text": "x = 1\n", "time": 1.0, "filename": "a.py"}],
            "cache_prompt": True, "t_max_prompt_ms": 1, "t_max_predict_ms": 1}  # fmt: skip
    r = client.post("/infill", json=warm)
    assert r.status_code == 200 and r.json()["content"] == "" and r.json()["tokens_predicted"] == 0


def test_streamed_final_chunk_has_the_fields_too(client: TestClient) -> None:
    body = {**llama_vim_request("def area(w, h):\n", "    return ", "\n", indent=4), "stream": True}
    lines = [line for line in client.post("/infill", json=body).text.splitlines() if line.startswith("data: ")]
    assert '"timings/predicted_n"' in lines[-1] and '"tokens_cached"' in lines[-1]


@pytest.mark.parametrize(
    ("answer", "cut"),
    [
        ("a\n    b\nc", "a\n    b"),  # a line at indent 0 < 4 ends it (the suffix brings the newline)
        ("a\n  b", "a"),  # partly written: its indent is already known
        ("a\n\n    b", None),  # blank lines do not count
        ("a\n\tb", "a"),  # characters, as llama-server counts them: a tab is one
    ],
)
def test_min_indent_rule(answer: str, cut: str | None) -> None:
    stops = FimStops("def f():\n    ", "\n", block=False, min_indent=4)
    at = stops.cut(answer, final=True)
    assert (answer[:at] if at is not None else None) == cut
