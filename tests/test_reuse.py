"""KV reuse across positions (engine/reuse.py) and the aligned windows of a cursor jump (engine/spark.py)."""

from __future__ import annotations

import asyncio
import time

from fastapi.testclient import TestClient

from codespark.config import Settings
from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Engine, GenerationRequest
from codespark.engine.fake import FakeBackend
from codespark.engine.fim import FimRequest
from codespark.engine.loader import Engines
from codespark.engine.reuse import Run, plan
from codespark.engine.spark import JUMP_MIN_NEW_TOKENS, align, within_new
from codespark.server.app import create_app


def covered(kept_runs: tuple[Run, ...], old: list[int], new: list[int]) -> None:
    """Every run really is equal text in both sequences, and no cached token serves twice."""
    seen: set[int] = set()
    for run in kept_runs:
        assert old[run.old : run.old + run.length] == new[run.new : run.new + run.length]
        cells = set(range(run.old, run.old + run.length))
        assert not cells & seen
        seen |= cells


def test_without_min_run_only_the_common_prefix_is_reused() -> None:
    old, new = list(range(100)), [*range(50), 999, *range(50, 100)]
    kept = plan(old, new, 0)
    assert kept.runs == (Run(0, 0, 50),) and kept.reused == 50 and kept.shifted == 0


def test_a_deletion_before_text_moves_the_rest_left() -> None:
    old = list(range(200))
    new = [0, *range(40, 200)]  # the window's first lines are gone
    kept = plan(old, new, 16)
    covered(kept.runs, old, new)
    assert kept.prefix == 1 and kept.gaps() == []
    assert kept.reused == len(new) - 1  # all but the last token, whose logits are needed
    assert kept.shifted == kept.reused - kept.prefix


def test_an_insertion_leaves_a_gap_and_the_text_after_it_moves_right() -> None:
    old = list(range(200))
    new = [*range(100), 900, 901, 902, *range(100, 200)]  # <|fim_suffix|> moved here, say
    kept = plan(old, new, 16)
    covered(kept.runs, old, new)
    assert kept.gaps() == [(100, 103)]
    assert kept.runs[1].shift == 3 and kept.end == len(new) - 1


def test_runs_may_come_from_anywhere_in_the_cache() -> None:
    a, b, c = list(range(0, 40)), list(range(100, 140)), list(range(200, 240))
    old, new = [*a, *b, *c], [*a, *c, *b]  # c moved above b
    kept = plan(old, new, 16)
    covered(kept.runs, old, new)
    assert kept.reused == len(new) - 1 and not kept.gaps()


def test_short_runs_and_too_many_gaps_are_evaluated_instead() -> None:
    old = list(range(300))
    new = [*range(50), 999, *range(50, 60), 998, *range(60, 300)]
    kept = plan(old, new, 16)
    covered(kept.runs, old, new)
    assert [run.length for run in kept.runs][:1] == [50]
    assert all(run.length >= 16 for run in kept.runs[1:])
    assert (50, 62) in kept.gaps()  # the 10-token run between two edits is re-evaluated
    noisy = [t for i in range(0, 300, 20) for t in (*old[i : i + 19], 5000 + i)]
    assert len(plan(old, noisy, 16, max_gaps=3).gaps()) <= 3


def test_text_mostly_new_is_evaluated_in_order_not_as_a_big_gap() -> None:
    """A gap cannot be cancelled half way without losing the runs after it, so gaps stay small."""
    old = list(range(1000, 1100))
    new = [0, *range(1, 500), *old]  # 499 new tokens, then the cached text
    assert plan(old, new, 16).runs == ()  # not a 499-token gap: evaluated from the start, cancellable
    assert plan(old, new, 16, max_gap_tokens=1000).reused == len(old) - 1  # all but the last token


def test_an_unchanged_prompt_re_evaluates_only_its_last_token() -> None:
    old = list(range(64))
    assert plan(old, old, 16).reused == 63


FILE = [f"line_{i} = compute({i})\n" for i in range(300)]


def window(cursor: int, before: int = 128, after: int = 32) -> FimRequest:
    return FimRequest(
        "".join(FILE[max(0, cursor - before) : cursor]), "\n" + "".join(FILE[cursor + 1 : cursor + 1 + after])
    )


def test_a_jump_up_keeps_the_previous_first_line_and_a_jump_down_its_last() -> None:
    opened = window(200)
    up = align(window(190), opened)
    assert up.prefix.startswith(FILE[72]) and up.prefix == "".join(FILE[72:190])  # 10 lines not brought in
    assert up.suffix == window(190).suffix  # a jump up brings no new suffix lines
    down = align(window(210), opened)
    assert down.suffix.endswith(FILE[232]) and down.suffix == "\n" + "".join(FILE[211:233])
    assert down.prefix == window(210).prefix


def test_alignment_keeps_half_the_prefix_and_8_suffix_lines_and_skips_other_files() -> None:
    opened = window(200)
    far_up = align(window(130), opened)
    assert far_up.prefix.count("\n") == 64  # half of the 128 lines the client sent
    far_down = align(window(225), opened)
    assert far_down.suffix.count("\n") == 8  # the old last line is 7 lines below: 8 lines are kept
    past = align(window(260), opened)
    assert past.suffix == "".join(window(260).suffix.splitlines(keepends=True)[:8])  # all new: few of them
    other = FimRequest(window(190).prefix, window(190).suffix, filename="b.py")
    assert align(other, FimRequest(opened.prefix, opened.suffix, filename="a.py")) == other
    assert align(window(190), None) == window(190)


def _new_cost(window: FimRequest, previous: FimRequest) -> int:
    known = set(previous.prefix.splitlines()) | set(previous.suffix.splitlines())
    return sum(len(line) for line in (window.prefix + window.suffix).splitlines(keepends=True)
               if line.rstrip("\n") not in known)  # fmt: skip


def test_a_jump_window_cut_to_a_budget_drops_new_suffix_lines_first_then_keeps_the_nearest_prefix() -> None:
    opened = window(200)
    near = align(window(236), opened)  # new suffix lines only
    assert _new_cost(near, opened) > 100
    cut = within_new(near, opened, len, 100)
    assert cut.prefix == near.prefix and near.suffix.startswith(cut.suffix) and cut.suffix.startswith("\n")
    assert _new_cost(cut, opened) <= 100
    assert within_new(near, opened, len, 10**6) == near  # within the budget: unchanged
    far = align(window(250), opened)  # 17 new prefix lines right above the cursor
    cut = within_new(far, opened, len, 100)
    assert far.prefix.endswith(cut.prefix) and FILE[249] in cut.prefix and len(cut.prefix + cut.suffix) <= 100
    assert cut.suffix == "\n"  # the cursor line's rest: every suffix line is new


def test_a_far_jump_answers_within_the_client_budget_and_the_other_engine_warms_the_whole_window() -> None:
    backends = {"spark": FakeBackend(model_id="small", reuse_min_run=32, n_ctx=16384),
                "codex": FakeBackend(model_id="big", reuse_min_run=32, n_ctx=16384)}  # fmt: skip
    engines = {route: Engine(backend) for route, backend in backends.items()}
    app = create_app(Settings(), Engines(routes=dict(engines)))

    def keystroke(cursor: int, typed: str, n_predict: int = 8) -> tuple[str, dict[str, int]]:
        w = window(cursor)
        body = {"input_prefix": w.prefix + typed, "input_suffix": w.suffix, "n_predict": n_predict,
                "t_max_prompt_ms": 500}  # fmt: skip
        r = client.post("/infill", json=body, headers={"X-Session": "far"})
        assert r.status_code == 200, r.text
        return r.headers["x-codespark-engine"], r.json()["timings"]

    with TestClient(app, base_url="http://localhost") as client:
        fim = app.state.codespark.fim
        keystroke(200, "", n_predict=0)  # the editor's warm-up at file open fills both engines
        route, jumped = keystroke(260, "l")  # 28 new prefix lines, 8 new suffix lines: ~860 tokens of the fake
        assert jumped["prompt_n"] - jumped["cache_n"] <= JUMP_MIN_NEW_TOKENS + 16, jumped
        deadline = time.monotonic() + 5
        while (fim.warming or any(e.busy for e in engines.values())) and time.monotonic() < deadline:
            time.sleep(0.01)
        other = backends["codex" if route == "spark" else "spark"]
        warm = [prompt for prompt, p in zip(other.prompts, other.params, strict=True) if p.max_tokens == 0]
        assert FILE[140] in warm[-1] and FILE[259] in warm[-1]  # the whole new window


def test_a_cursor_jump_reuses_the_window_through_the_server() -> None:
    fake = FakeBackend(default="x = 1", reuse_min_run=32, n_ctx=16384)
    app = create_app(Settings(), Engines(routes={"spark": Engine(fake)}))

    def keystroke(cursor: int, typed: str) -> dict[str, int]:
        w = window(cursor)
        body = {"input_prefix": w.prefix + typed, "input_suffix": w.suffix, "n_predict": 8, **budget}
        r = client.post("/infill", json=body, headers={"X-Session": session})
        assert r.status_code == 200, r.text
        timings: dict[str, int] = r.json()["timings"]
        return timings

    with TestClient(app, base_url="http://localhost") as client:
        budget, session = {"t_max_prompt_ms": 500}, "jumps"  # an editor that sets a latency budget
        cold = keystroke(200, "lin")
        assert cold["cache_n"] <= 1
        for cursor in (190, 205, 180):
            jumped = keystroke(cursor, "lin")
            # Only the moved <|fim_suffix|>, the line left behind and what was typed are new.
            assert jumped["prompt_n"] - jumped["cache_n"] <= 3 * len(FILE[0]) + 8, (cursor, jumped)
            assert jumped["cache_shift_n"] > 0
        # Without a budget (a one-shot request, the quality set) only the exact common prefix is reused.
        budget, session = {}, "exact"
        keystroke(200, "lin")
        exact = keystroke(190, "lin")
        # (The aligned window still shares its common prefix up to the new cursor: the suffix is evaluated.)
        assert exact["cache_shift_n"] == 0 and exact["prompt_n"] - exact["cache_n"] > 20 * len(FILE[0])


def test_a_background_warm_up_yields_to_any_request_at_once() -> None:
    fake = FakeBackend(default="ok", prefill_delay=2.0)
    engine = Engine(fake)

    async def scenario() -> tuple[bool, float, bool]:
        warm = asyncio.create_task(engine.warm(engine.prepare(GenerationRequest(["big window"], SamplingParams(0)))))
        while not engine.busy:
            await asyncio.sleep(0.001)
        fake.prefill_delay = 0.0
        answer = await engine.run(GenerationRequest(["keystroke"], SamplingParams(max_tokens=4)))
        # While a request runs, a warm-up does not even start.
        blocked = asyncio.create_task(engine.run(GenerationRequest(["slow"], SamplingParams(max_tokens=200))))
        while not engine.busy:
            await asyncio.sleep(0.001)
        refused = await engine.warm(engine.prepare(GenerationRequest(["other"], SamplingParams(0))))
        await blocked
        return await warm, answer.timings.queue_ms, refused

    warmed, queued_ms, refused = asyncio.run(scenario())
    engine.close()
    assert warmed is False and refused is False
    assert queued_ms < 500  # not the 2 s the warm-up would have taken


def test_cold_and_jumped_keystrokes_go_to_spark_first_while_codex_warms_the_window() -> None:
    spark_backend = FakeBackend(model_id="small", reuse_min_run=32, n_ctx=16384)
    spark = Engine(spark_backend)
    codex_backend = FakeBackend(model_id="big", reuse_min_run=32, n_ctx=16384)
    codex = Engine(codex_backend)
    app = create_app(Settings(), Engines(routes={"spark": spark, "codex": codex}))

    def keystroke(cursor: int, typed: str) -> tuple[str, str]:
        w = window(cursor)
        body = {"input_prefix": w.prefix + typed, "input_suffix": w.suffix, "n_predict": 8, "t_max_prompt_ms": 500}
        r = client.post("/infill", json=body, headers={"X-Session": "jumps"})
        assert r.status_code == 200, r.text
        return r.headers["x-codespark-engine"], r.headers["x-codespark-route-reason"]

    with TestClient(app, base_url="http://localhost") as client:
        fim = app.state.codespark.fim

        def warmed(backend: FakeBackend, text: str) -> bool:
            """The background warm-up of ``text`` ran and finished (its window counts as cached)."""
            deadline = time.monotonic() + 5
            while (fim.warming or spark.busy or codex.busy) and time.monotonic() < deadline:
                time.sleep(0.01)
            pairs = zip(backend.params, backend.prompts, strict=True)
            return any(p.max_tokens == 0 and text in prompt for p, prompt in pairs)

        # Cold, with a client budget: spark answers from a short window, codex warms the whole one.
        engine, reason = keystroke(200, "l")
        assert engine == "spark" and "cold window" in reason, reason
        assert len(spark_backend.prompts[-1]) < 1200  # ~256 tokens of the fake's one byte per token
        assert warmed(codex_backend, "line_72 ")  # the first line of the client's window
        # Codex is warm at 200; the spark window is short: the next keystroke there is codex's.
        engine, reason = keystroke(200, "li")
        assert engine == "codex", reason
        assert warmed(spark_backend, "line_72 ")  # and spark gets the whole window after it
        # A jump: spark (its window moved by a few lines) answers first, and codex warms the new place.
        engine, reason = keystroke(190, "l")
        assert engine == "spark" and "new place" in reason, reason
        assert warmed(codex_backend, "line_189 ")
