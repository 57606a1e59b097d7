"""The spark path on the real models: sessions, supersede, typed-ahead, lossless speculation, router, metrics."""

from __future__ import annotations

import asyncio
import inspect
import json
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from codespark.config import Settings
from codespark.engine import chat
from codespark.engine.backend import CancelToken, GenerationStats, SamplingParams, Snapshot
from codespark.engine.engine import Engine
from codespark.engine.llama import LlamaBackend, LlamaOptions
from codespark.engine.speculative import ModelDrafter, NgramDrafter
from codespark.models.catalog import find
from tests.integration.conftest import Server

pytestmark = pytest.mark.integration

PREFIX = "def average(values):\n    total = sum(values)\n    "
SUFFIX = "\n    return result\n\n\nprint(average([1, 2, 3]))\n"


def infill(server: Server, prefix: str, session: str, **extra: object) -> dict[str, object]:
    r = httpx.post(
        server.base + "/infill",
        json={"input_prefix": prefix, "input_suffix": SUFFIX, "n_predict": 32, "model": "spark", **extra},
        headers={"X-Session": session},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_typed_ahead_answers_the_predicted_text_without_a_forward_pass(server: Server) -> None:
    first = infill(server, PREFIX, "typed-ahead")
    content = str(first["content"])
    assert len(content) > 4, content
    typed = content[:3]
    second = infill(server, PREFIX + typed, "typed-ahead")
    assert second["content"] == content[3:]
    timings = second["timings"]
    assert isinstance(timings, dict)
    assert timings["typed_ahead"] is True and timings["prompt_n"] == 0 and timings["predicted_n"] == 0
    assert second["tokens_predicted"] == 0


def test_keystrokes_on_a_line_evaluate_only_the_typed_text(server: Server) -> None:
    infill(server, PREFIX + "res", "keys", n_predict=1)
    second = infill(server, PREFIX + "result = to", "keys", n_predict=1)
    timings = second["timings"]
    assert isinstance(timings, dict)
    assert timings["cache_n"] > 0
    assert timings["prompt_n"] - timings["cache_n"] <= 6  # "ult = to" is a handful of tokens; the suffix is cached


def test_a_second_request_supersedes_the_first_stream(server: Server) -> None:
    async def main() -> tuple[list[dict[str, object]], dict[str, object]]:
        async with httpx.AsyncClient(base_url=server.base, timeout=120) as http:
            body = {
                "model": "spark",
                "input_prefix": "Numbers from 1 to 999, one per line:\n1\n2\n3\n",
                "input_suffix": "",
                "n_predict": 1500,
                "stream": True,
            }
            events: list[dict[str, object]] = []

            async def first() -> None:
                async with http.stream("POST", "/infill", json=body, headers={"X-Session": "sup"}) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            events.append(json.loads(line[6:]))

            task = asyncio.create_task(first())
            while len(events) < 3:
                await asyncio.sleep(0.05)
            second = await http.post(
                "/infill",
                json={**body, "stream": False, "n_predict": 4, "input_prefix": "Numbers:\n"},
                headers={"X-Session": "sup"},
            )
            await asyncio.wait_for(task, 30)
            return events, second.json()

    events, second = asyncio.run(main())
    assert events[-1]["stop"] is True and events[-1]["finish_reason"] == "cancelled"
    assert second["tokens_predicted"] == 4 or second["finish_reason"] == "stop"


def test_router_sends_deep_work_to_codex_and_honours_pins(server: Server) -> None:
    chat_r = httpx.post(
        server.base + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=120,
    )
    assert chat_r.headers["x-codespark-engine"] == "codex"
    pinned = httpx.post(
        server.base + "/infill",
        json={"input_prefix": "x = ", "n_predict": 2, "model": "spark", "t_max_predict_ms": 1},
        timeout=120,
    )
    assert pinned.headers["x-codespark-route-reason"] == "pinned by the request"
    cold = httpx.post(
        server.base + "/infill",
        json={"input_prefix": "y = 1\n" * 300, "n_predict": 2},
        headers={"X-Session": "router"},
        timeout=120,
    )
    # Without a client budget a cold prompt misses the default one on both engines: quality wins.
    assert cold.headers["x-codespark-engine"] == "codex"
    assert "neither fits" in cold.headers["x-codespark-route-reason"]
    budgeted = httpx.post(
        server.base + "/infill",
        json={"input_prefix": "z = 2\n" * 300, "n_predict": 2, "max_latency_ms": 100},
        headers={"X-Session": "router-budget"},
        timeout=120,
    )
    # With one (an editor), spark answers a cold window from the text around the cursor first.
    assert budgeted.headers["x-codespark-engine"] == "spark"
    assert "cold window" in budgeted.headers["x-codespark-route-reason"]


def test_metrics_parse_and_count(server: Server) -> None:
    text = httpx.get(server.base + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "codespark_ttft_seconds",
        "codespark_cached_tokens",
        "codespark_supersedes",
        "codespark_typed_ahead_hits",
        "codespark_route_decisions",
        "codespark_spec_accepted_tokens",
    ):
        assert name in families, name


def _model(role: str) -> Path:
    spec = find(role)
    assert spec is not None
    return Settings().models_dir / spec.filename


def _greedy(backend: LlamaBackend, tokens: list[int], n: int) -> tuple[list[int], GenerationStats]:
    stats = GenerationStats()
    out = list(backend.generate(tokens, SamplingParams(max_tokens=n), CancelToken(), stats))
    return out, stats


# llama.cpp's logits depend on the batch shape: one 31-token batch and 31 single-token steps differ by
# up to 0.64 in logit (measured, whatever the threads, llamafile, repack or flash-attention settings). A
# verify batch can therefore flip a near-tie that plain decoding resolves the other way. So "lossless"
# is asserted as: identical to plain greedy decoding up to the first position where plain decoding's
# top-two logits were closer than NEAR_TIE. A bug in verification diverges at confident positions.
NEAR_TIE = 1.0


def _plain_with_gaps(backend: LlamaBackend, tokens: list[int], n: int) -> tuple[list[int], list[float]]:
    """Plain greedy decoding, recording the gap between the top two logits at each step."""
    llm = backend._llm
    llm.reset()
    llm.eval(tokens)
    out, gaps = [], []
    for _ in range(n):
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        top2 = np.partition(logits, -2)[-2:]
        token = int(np.argmax(logits))
        out.append(token)
        gaps.append(float(abs(top2[1] - top2[0])))
        if backend.is_stop_token(token):
            break
        llm.eval([token])
    return out, gaps


def _assert_lossless(plain: list[int], gaps: list[float], fast: list[int]) -> None:
    for i, (a, b) in enumerate(zip(plain, fast, strict=False)):
        if a != b:
            assert gaps[i] < NEAR_TIE, f"diverged at token {i} where plain decoding was sure (gap {gaps[i]:.2f})"
            return
    assert len(fast) == len(plain)


EDIT = "Rename `chunks` to `pieces` in this function; reply with the code only.\n\n" + "\n".join(
    inspect.getsource(textwrap.TextWrapper._wrap_chunks).splitlines()[:30]
)


def test_ngram_speculation_is_lossless_on_the_real_model() -> None:
    backend = LlamaBackend(_model("spark"), "spark", LlamaOptions(n_ctx=4096))
    tokens = Engine(backend).tokenize_prompt(chat.build_prompt(backend.info, [chat.Message("user", EDIT)]))
    plain, gaps = _plain_with_gaps(backend, tokens, 160)
    backend.restore(Snapshot([], None, 0))
    backend.drafter = NgramDrafter()
    fast, stats = _greedy(backend, tokens, 160)
    _assert_lossless(plain, gaps, fast)
    assert stats.drafted > 0 and stats.accepted > stats.drafted // 2


def test_draft_model_speculation_is_lossless_on_the_real_models() -> None:
    target = LlamaBackend(_model("codex"), "codex", LlamaOptions(n_ctx=4096))
    question = "Write a Python function that merges two sorted lists."
    tokens = Engine(target).tokenize_prompt(chat.build_prompt(target.info, [chat.Message("user", question)]))
    plain, gaps = _plain_with_gaps(target, tokens, 48)
    target.restore(Snapshot([], None, 0))
    target.drafter = ModelDrafter(LlamaBackend(_model("spark"), "draft", LlamaOptions(n_ctx=4096)))
    fast, stats = _greedy(target, tokens, 48)
    _assert_lossless(plain, gaps, fast)
    assert stats.drafted > 0
