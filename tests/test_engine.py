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
