"""Keystroke sessions on the fake backend: anchored cache reuse, typed-ahead, supersede, routing, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import pytest
from fastapi.testclient import TestClient

from codespark.config import Settings
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Engine, GenerationRequest
from codespark.engine.fake import FakeBackend
from codespark.engine.fim import FimRequest
from codespark.engine.loader import Engines
from codespark.engine.mask import Guide, Silent, Vocabulary
from codespark.engine.spark import FimSessions
from codespark.guard.auth import hash_key
from codespark.server.app import create_app
from tests.helpers import sse_payloads, uvicorn_thread

PREFIX = "import os\n\n\ndef list_files(root):\n"
SUFFIX = "\n\nprint(list_files('.'))\n"


def infill(client: TestClient, prefix: str, session: str = "s1", **extra: object) -> dict[str, object]:
    r = client.post(
        "/infill",
        json={"input_prefix": prefix, "input_suffix": SUFFIX, "n_predict": 64, **extra},
        headers={"X-Session": session},
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_typing_on_a_line_reuses_the_anchored_cache(client: TestClient) -> None:
    infill(client, PREFIX + "    fil")
    second = infill(client, PREFIX + "    files = [")
    timings = second["timings"]
    assert isinstance(timings, dict)
    # Only the newly typed text is new: everything up to <|fim_middle|> and "    fi" is cached (the last
    # token of a word being typed, "l" here, was held back for token healing).
    assert timings["prompt_n"] - timings["cache_n"] <= len("les = [")


def test_typed_ahead_is_answered_without_a_forward_pass(fake: FakeBackend) -> None:
    fake.replies = {"root": "    return sorted(os.listdir(root))"}
    engine = Engine(fake)
    app = create_app(Settings(), Engines(routes={"spark": engine}))
    with TestClient(app, base_url="http://localhost") as client:
        first = infill(client, PREFIX)
        assert first["content"] == "    return sorted(os.listdir(root))"
        generated = fake.generated_tokens
        hit = infill(client, PREFIX + "    return sor")
        assert hit["content"] == "ted(os.listdir(root))"
        assert fake.generated_tokens == generated  # no forward pass at all
        timings = hit["timings"]
        assert isinstance(timings, dict) and timings["typed_ahead"] is True and timings["prompt_n"] == 0
        # Typing past the prediction (a divergence) goes back to the model.
        miss = infill(client, PREFIX + "    return list")
        assert miss["timings"]["typed_ahead"] is False  # type: ignore[index]
        metrics = client.get("/metrics").text
        assert 'codespark_typed_ahead_hits_total{engine="spark"} 1.0' in metrics


def test_sessions_do_not_share_typed_ahead(client: TestClient) -> None:
    infill(client, PREFIX, session="alice")
    other = infill(client, PREFIX + "he", session="bob")
    assert other["timings"]["typed_ahead"] is False  # type: ignore[index]


async def generating(fake: FakeBackend) -> None:
    """Wait until the fake backend produces a token (the request is running), then re-arm."""
    assert await asyncio.to_thread(fake.generating.wait, 10)
    fake.generating.clear()


@contextmanager
def serving(settings: Settings, max_queue: int = 16) -> Iterator[tuple[str, FakeBackend]]:
    """A real uvicorn server on loopback (streams need a real socket to be superseded)."""
    fake = FakeBackend(default="x" * 400, token_delay=0.01)
    app = create_app(settings, Engines(routes={"spark": Engine(fake, max_queue=max_queue)}))
    with uvicorn_thread(app) as base:
        yield base, fake


@pytest.fixture
def live_server() -> Iterator[tuple[str, FakeBackend]]:
    with serving(Settings()) as running:
        yield running


def test_a_new_keystroke_supersedes_the_inflight_request(live_server: tuple[str, FakeBackend]) -> None:
    base, fake = live_server

    async def main() -> tuple[dict[str, object], dict[str, object]]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            body = {"input_prefix": PREFIX + "    a", "input_suffix": SUFFIX, "n_predict": 300}
            first = asyncio.create_task(http.post("/infill", json=body, headers={"X-Session": "s"}))
            await generating(fake)
            body2 = {**body, "input_prefix": PREFIX + "    ab"}
            second = await http.post("/infill", json=body2, headers={"X-Session": "s"})
            return (await first).json(), second.json()

    started = time.perf_counter()
    first, second = asyncio.run(main())
    assert first["finish_reason"] == "cancelled"
    assert 0 < first["tokens_predicted"] < 300  # type: ignore[operator]
    assert second["tokens_predicted"] == 300
    assert time.perf_counter() - started < 300 * 0.01 * 1.8  # the first did not run to the end
    metrics = httpx.get(base + "/metrics").text
    assert 'codespark_supersedes_total{engine="spark"} 1.0' in metrics


def test_router_follows_the_policy() -> None:
    spark, codex = Engine(FakeBackend(model_id="small")), Engine(FakeBackend(model_id="big"))
    app = create_app(Settings(fim_latency_budget_ms=250), Engines(routes={"spark": spark, "codex": codex}))
    with TestClient(app, base_url="http://localhost") as client:

        def route(prefix: str, **extra: object) -> tuple[str, str]:
            r = client.post(
                "/infill",
                json={"input_prefix": prefix, "input_suffix": "", "n_predict": 4, **extra},
                headers={"X-Session": "r"},
            )
            return r.headers["x-codespark-engine"], r.headers["x-codespark-route-reason"]

        # A cold 1,000-token prompt misses the budget on both engines: quality wins.
        engine, reason = route("y" * 1000)
        assert engine == "codex" and "neither fits" in reason
        # A tiny prompt fits codex's estimate within the budget: the quality engine answers.
        engine, reason = route("x")
        assert engine == "codex" and "fits the budget" in reason
        # A budget codex misses but spark meets goes to spark; a pinned model wins over the policy.
        engine, reason = route("z", max_latency_ms=60)
        assert engine == "spark" and "spark fits" in reason
        assert route("w", model="codex", t_max_predict_ms=10) == ("codex", "pinned by the request")
        # Typing what the last completion predicted is answered from it, whichever engine made it.
        assert route("w" + "ok"[:1]) == ("codex", "typed-ahead: the last completion predicted this")
        chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert chat.headers["x-codespark-engine"] == "codex"
        metrics = client.get("/metrics").text
        assert 'codespark_route_decisions_total{engine="codex",reason="pinned by the request"}' in metrics


def test_metrics_parse_as_prometheus_text(client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    infill(client, PREFIX)
    families = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert {
        "codespark_ttft_seconds",
        "codespark_cached_tokens",
        "codespark_supersedes",
        "codespark_typed_ahead_hits",
        "codespark_route_decisions",
    } <= families


def test_idle_sessions_are_parked_and_restored(fake: FakeBackend) -> None:
    engine = Engine(fake)
    app = create_app(Settings(), Engines(routes={"spark": engine}))
    with TestClient(app, base_url="http://localhost") as client:
        infill(client, PREFIX + "    a", session="one")
        infill(client, "other file\n" + "    b", session="two")
        back = infill(client, PREFIX + "    ab", session="one")
        timings = back["timings"]
        assert isinstance(timings, dict)
        assert timings["prompt_n"] - timings["cache_n"] <= 2  # session one's KV came back
        assert {name.rsplit("|", 1)[1] for name in engine.sessions.sessions()} == {"id:one", "id:two"}


KEYS = {"alice": "csk-alice-key", "bob": "csk-bob-key"}


def _as(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[user]}", "X-Session": "shared-name"}


def test_with_keys_one_user_never_supersedes_another() -> None:
    with serving(Settings(api_keys=[hash_key(k) for k in KEYS.values()])) as (base, fake):

        async def main() -> tuple[dict[str, object], dict[str, object]]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                body = {"input_prefix": PREFIX + "    a", "input_suffix": SUFFIX, "n_predict": 200}
                first = asyncio.create_task(http.post("/infill", json=body, headers=_as("alice")))
                await generating(fake)
                body2 = {**body, "input_prefix": PREFIX + "    ab"}  # same session name, same text, other user
                second = await http.post("/infill", json=body2, headers=_as("bob"))
                return (await first).json(), second.json()

        first, second = asyncio.run(main())
    assert first["finish_reason"] == "length" and first["tokens_predicted"] == 200
    assert second["tokens_predicted"] == 200


def test_with_keys_typed_ahead_is_never_handed_to_another_user(fake: FakeBackend) -> None:
    fake.replies = {"root": "    return sorted(os.listdir(root))"}
    app = create_app(Settings(api_keys=[hash_key(k) for k in KEYS.values()]), Engines(routes={"spark": Engine(fake)}))
    with TestClient(app, base_url="http://localhost") as client:
        body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 64}
        assert client.post("/infill", json=body, headers=_as("alice")).json()["content"].startswith("    return")
        typed = {**body, "input_prefix": PREFIX + "    return sor"}
        bob = client.post("/infill", json=typed, headers=_as("bob")).json()
        assert bob["timings"]["typed_ahead"] is False
        alice = client.post("/infill", json=typed, headers=_as("alice")).json()
        assert alice["timings"]["typed_ahead"] is True


def test_buffers_without_session_or_filename_keep_their_own_caches(fake: FakeBackend) -> None:
    engine = Engine(fake)
    app = create_app(Settings(), Engines(routes={"spark": engine}))
    other = "class Config:\n    debug = False\n\n\ndef load(path):\n"
    with TestClient(app, base_url="http://localhost") as client:

        def llama_vim(prefix: str) -> dict[str, object]:  # llama.vim sends no session id and no filename
            r = client.post("/infill", json={"input_prefix": prefix, "input_suffix": SUFFIX, "n_predict": 8})
            assert r.status_code == 200, r.text
            timings: dict[str, object] = r.json()["timings"]
            return timings

        llama_vim(PREFIX + "    a")
        llama_vim(other + "    b")
        back = llama_vim(PREFIX + "    ab")
        assert back["prompt_n"] - back["cache_n"] <= 2  # type: ignore[operator]  # buffer one's KV came back
        assert len(engine.sessions.sessions()) == 2


def test_a_keystroke_in_one_buffer_supersedes_the_same_callers_other_buffer(
    live_server: tuple[str, FakeBackend],
) -> None:
    base, fake = live_server

    async def main() -> dict[str, object]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            body = {"input_prefix": PREFIX + "    a", "input_suffix": SUFFIX, "n_predict": 300}
            first = asyncio.create_task(http.post("/infill", json=body))
            await generating(fake)
            await http.post("/infill", json={**body, "input_prefix": "x = 1\ny = 2\n", "n_predict": 4})
            result: dict[str, object] = (await first).json()
            return result

    assert asyncio.run(main())["finish_reason"] == "cancelled"


def test_overload_is_shed_with_503_and_retry_after_never_queued_without_bound() -> None:
    with serving(Settings(), max_queue=2) as (base, _):

        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                body = {"prompt": "x", "max_tokens": 40}
                plain = [http.post("/v1/completions", json=body) for _ in range(6)]
                streams = [http.post("/v1/completions", json={**body, "stream": True}) for _ in range(4)]
                return list(await asyncio.gather(*plain, *streams))

        answers = asyncio.run(main())
        assert httpx.get(base + "/health").status_code == 200  # alive after
    codes = sorted(r.status_code for r in answers)
    assert set(codes) == {200, 503} and codes.count(200) >= 3  # one running + two waiting at least
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"].isdigit() and r.json()["error"]["code"] == "overloaded"
        else:
            assert "error" not in r.text


def test_a_chat_on_the_same_engine_leaves_the_keystroke_cache_warm(fake: FakeBackend) -> None:
    engine = Engine(fake)  # one engine behind both routes: chat runs where the keystrokes run
    app = create_app(Settings(), Engines(routes={"spark": engine, "codex": engine}))
    with TestClient(app, base_url="http://localhost") as client:
        infill(client, PREFIX + "    a")
        chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200
        after = infill(client, PREFIX + "    ab")
        timings = after["timings"]
        assert isinstance(timings, dict)
        assert timings["prompt_n"] - timings["cache_n"] <= 2  # the keystroke session was parked, not overwritten


def test_a_request_superseded_while_queued_ends_cancelled_not_503(live_server: tuple[str, FakeBackend]) -> None:
    base, fake = live_server

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            busy = asyncio.create_task(http.post("/v1/completions", json={"prompt": "x", "max_tokens": 100}))
            await generating(fake)  # the engine is busy: the next keystrokes queue behind it
            body = {"input_prefix": PREFIX + "    a", "input_suffix": SUFFIX, "n_predict": 8}
            queued = asyncio.create_task(http.post("/infill", json=body, headers={"X-Session": "q"}))
            await asyncio.sleep(0.2)
            body2 = {**body, "input_prefix": PREFIX + "    zz"}
            newer = asyncio.create_task(http.post("/infill", json=body2, headers={"X-Session": "q"}))
            return list(await asyncio.gather(busy, queued, newer))

    busy, queued, newer = asyncio.run(main())
    assert busy.status_code == queued.status_code == newer.status_code == 200
    assert queued.json()["finish_reason"] == "cancelled" and newer.json()["tokens_predicted"] == 8


def test_a_cancelled_completion_stream_says_cancelled_not_stop(live_server: tuple[str, FakeBackend]) -> None:
    base, fake = live_server

    async def main() -> str:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            body = {"prompt": PREFIX + "    a", "suffix": SUFFIX, "max_tokens": 300, "stream": True, "user": "u"}
            first = asyncio.create_task(http.post("/v1/completions", json=body))
            await generating(fake)
            await http.post("/v1/completions", json={**body, "prompt": PREFIX + "    ab", "stream": False})
            return (await first).text

    finishes = [p["choices"][0]["finish_reason"] for p in sse_payloads(asyncio.run(main())) if isinstance(p, dict)]
    assert finishes[-1] == "cancelled"


def test_typed_ahead_honours_the_new_requests_limit_and_stops(fake: FakeBackend) -> None:
    fake.replies = {"root": "    return sorted(os.listdir(root)) or []"}
    app = create_app(Settings(), Engines(routes={"spark": Engine(fake)}))
    with TestClient(app, base_url="http://localhost") as client:
        infill(client, PREFIX)
        short = infill(client, PREFIX + "    ret", n_predict=5)
        assert short["timings"]["typed_ahead"] is True  # type: ignore[index]
        assert short["content"] == "urn sorted(os.listdir(root)) or []"[: len(short["content"])]  # type: ignore[arg-type]
        assert len(fake.tokenize(short["content"])) <= 5  # type: ignore[arg-type]
        stopped = infill(client, PREFIX + "    retu", stop=["listdir"])
        assert stopped["content"] == "rn sorted(os."


def test_keystrokes_have_a_short_queue() -> None:
    with serving(Settings(fim_max_queue=1)) as (base, fake):

        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                busy = asyncio.create_task(http.post("/v1/completions", json={"prompt": "x", "max_tokens": 60}))
                await generating(fake)
                body = {"input_prefix": PREFIX + "    a", "input_suffix": SUFFIX, "n_predict": 4}
                # Three buffers at once, behind a busy engine: one may wait, the others are shed at once.
                others = await asyncio.gather(
                    *(http.post("/infill", json=body, headers={"X-Session": f"b{i}"}) for i in range(3))
                )
                await busy
                return list(others)

        others = asyncio.run(main())
    assert sorted(r.status_code for r in others) == [200, 503, 503]
    assert all(r.headers["retry-after"].isdigit() for r in others if r.status_code == 503)


def test_a_superseded_waiting_keystroke_frees_its_place_in_the_queue() -> None:
    with serving(Settings(fim_max_queue=1)) as (base, fake):

        async def main() -> tuple[httpx.Response, httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                busy = asyncio.create_task(http.post("/v1/completions", json={"prompt": "x", "max_tokens": 100}))
                await generating(fake)
                body = {"input_prefix": PREFIX + "    a", "input_suffix": SUFFIX, "n_predict": 4}
                first = asyncio.create_task(http.post("/infill", json=body, headers={"X-Session": "s"}))
                await asyncio.sleep(0.2)  # let it take the one waiting place behind the busy engine
                newer = {**body, "input_prefix": PREFIX + "    zz"}
                second = await http.post("/infill", json=newer, headers={"X-Session": "s"})
                await busy
                return await first, second

        first, second = asyncio.run(main())
    assert first.status_code == 200 and first.json()["finish_reason"] == "cancelled"
    assert second.status_code == 200 and second.json()["tokens_predicted"] == 4  # not shed: the place was freed


def test_keystrokes_go_to_spark_when_codex_is_queued_up_with_other_work() -> None:
    spark, codex = Engine(FakeBackend(model_id="small")), Engine(FakeBackend(model_id="big", token_delay=0.01))
    app = create_app(Settings(fim_max_queue=1), Engines(routes={"spark": spark, "codex": codex}))
    with TestClient(app, base_url="http://localhost") as client:
        job = codex.prepare(GenerationRequest(["chat"], SamplingParams(max_tokens=1)))
        job2 = codex.prepare(GenerationRequest(["sql"], SamplingParams(max_tokens=1)))  # two on codex: past 1
        r = client.post("/infill", json={"input_prefix": "x", "input_suffix": "", "n_predict": 4})
        assert r.status_code == 200 and r.headers["x-codespark-engine"] == "spark"
        assert "queue" in r.headers["x-codespark-route-reason"]
        del job, job2  # their places are given back
        r = client.post("/infill", json={"input_prefix": "other\ny", "input_suffix": "", "n_predict": 4})
        assert r.headers["x-codespark-engine"] == "codex", r.headers["x-codespark-route-reason"]


def test_a_word_being_typed_is_healed_its_last_token_spelled_again_under_a_mask() -> None:
    """The prompt holds back the last token of a word being typed; the first generated tokens must spell it,
    so the model finishes the word (``sel`` -> ``self``) instead of taking the fragment as a whole word."""
    vocabulary = Vocabulary([b"self", b"sel", b"s", b"el", b"f", b" =", b"lf", b"e"])
    guide = Guide(Silent(), vocabulary, heal=b"el")
    allowed = guide.mask()
    assert allowed is not None and list(allowed.nonzero()[0]) == [3, 7]  # "el" begins with it, "e" starts it
    guide.push(b"e")
    allowed = guide.mask()
    assert allowed is not None and list(allowed.nonzero()[0]) == [6]  # "lf": "l" and more
    guide.push(b"lf")
    assert guide.mask() is None  # spelled: the rest is free
    assert Vocabulary([b"x"]).spelling(b"q").all()  # nothing spells it: no dead end


def test_healing_holds_back_a_word_but_not_a_member_the_monitor_constrains() -> None:
    engine = Engine(FakeBackend())
    sessions = FimSessions()
    params = SamplingParams(max_tokens=8)
    healed = sessions.plan("spark", engine, "a", FimRequest("def f(self):\n    sel", "\n"), params)
    assert healed.prepared is not None and healed.prepared.request.heal == "l"  # the fake: a byte a token
    member = FimRequest("def f(self):\n    self.na", "\n")
    guarded = sessions.plan("spark", engine, "b", member, replace(params, monitor=Silent()))
    assert guarded.prepared is not None and guarded.prepared.request.heal == ""
    free = sessions.plan("spark", engine, "c", member, params)  # no monitor: healed as any word
    assert free.prepared is not None and free.prepared.request.heal == "a"
