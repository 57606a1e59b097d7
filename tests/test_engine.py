"""Engine behaviour on the fake backend: cancellation, serialization, cache reporting."""

from __future__ import annotations

import asyncio
import time

from codespark.engine.backend import CancelToken, SamplingParams
from codespark.engine.engine import Delta, Engine, Finished, GenerationRequest
from codespark.engine.fake import FakeBackend


def request(text: str = "x", max_tokens: int = 100) -> GenerationRequest:
    return GenerationRequest([text], SamplingParams(max_tokens=max_tokens))


def test_cancel_stops_within_one_token() -> None:
    fake = FakeBackend(default="y" * 200, token_delay=0.01)
    engine = Engine(fake)

    async def main() -> Finished:
        cancel = CancelToken()
        task = asyncio.create_task(engine.run(request(max_tokens=200), cancel))
        await asyncio.sleep(0.1)
        cancel.cancel()
        seen = fake.generated_tokens
        result = await task
        assert fake.generated_tokens <= seen + 1
        return result

    result = asyncio.run(main())
    assert result.finish_reason == "cancelled"
    assert 0 < result.timings.completion_tokens < 200


def test_closing_the_stream_frees_the_engine() -> None:
    fake = FakeBackend(default="z" * 500, token_delay=0.005)
    engine = Engine(fake)

    async def main() -> None:
        stream = engine.stream(request(max_tokens=500))
        async for event in stream:
            assert isinstance(event, Delta)
            break
        started = time.perf_counter()
        await stream.aclose()
        assert time.perf_counter() - started < 0.5
        assert not engine.busy
        produced = fake.generated_tokens
        await asyncio.sleep(0.05)
        assert fake.generated_tokens == produced  # the worker really stopped

    asyncio.run(main())


def test_requests_are_serialized_and_report_cache() -> None:
    fake = FakeBackend(default="ab", token_delay=0.001)
    engine = Engine(fake)

    async def main() -> list[Finished]:
        return list(await asyncio.gather(engine.run(request("prefix one")), engine.run(request("prefix two"))))

    first, second = asyncio.run(main())
    assert first.text == second.text == "ab"
    assert second.timings.cached_tokens == len("prefix ")


def test_run_many_answers_each_params_with_its_own_stops_and_limit() -> None:
    fake = FakeBackend(default="abc\n```\nrest")
    engine = Engine(fake)
    job = engine.prepare(GenerationRequest(["q"], SamplingParams(max_tokens=50), stops=("\n```",)))
    params = [SamplingParams(max_tokens=50), SamplingParams(max_tokens=2, temperature=0.8, seed=3)]

    results = asyncio.run(engine.run_many(job, params))

    assert [r.text for r in results] == ["abc", "ab"]
    assert [r.finish_reason for r in results] == ["stop", "length"]
    assert fake.prompts == ["q"]  # one evaluation of the prompt for both answers
    assert fake.params[1].seed == 3
    assert engine.pending == 0


def test_run_many_groups_answers_that_do_not_fit_the_context_together() -> None:
    fake = FakeBackend(default="xy", n_ctx=64)
    engine = Engine(fake)
    job = engine.prepare(GenerationRequest(["p" * 20], SamplingParams(max_tokens=20)))

    results = asyncio.run(engine.run_many(job, [SamplingParams(max_tokens=20)] * 5))

    assert [r.text for r in results] == ["xy"] * 5
    assert len(fake.prompts) == 3  # 44 tokens of room: two answers of 20 at a time
