"""``[Mode: Spark]`` / ``[Mode: Codex]`` in a prompt pin the router on every API surface; the tag never
reaches a model, and the decision's reason says why."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from codespark import modes
from codespark.config import Settings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.server.app import create_app


@pytest.fixture
def fakes() -> dict[str, FakeBackend]:
    return {"spark": FakeBackend(default="from spark"), "codex": FakeBackend(default="from codex")}


@pytest.fixture
def client(fakes: dict[str, FakeBackend]) -> Iterator[TestClient]:
    engines = Engines(routes={route: Engine(b) for route, b in fakes.items()}, aliases={})
    with TestClient(create_app(Settings(), engines), base_url="http://localhost") as c:
        yield c


def _seen(fakes: dict[str, FakeBackend]) -> str:
    return "\n".join(p for b in fakes.values() for p in b.prompts)


SURFACES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "[Mode: Spark] quick, a name?"}]}, "spark"),
    ("/v1/chat/completions", {"model": "spark", "messages": [{"role": "user", "content": "[mode:codex]\nwhy?"}]},
     "codex"),
    ("/v1/completions", {"prompt": "[Mode: Codex] def f():", "max_tokens": 4}, "codex"),
    ("/v1/completions", {"prompt": "# [Mode: Spark]\ndef f(", "suffix": "\n", "max_tokens": 4}, "spark"),
    ("/infill", {"input_prefix": "# [MODE: codex]\nx = ", "input_suffix": "\n", "n_predict": 4}, "codex"),
    ("/api/generate", {"model": "codex", "prompt": "[Mode: Spark] hi", "stream": False}, "spark"),
    ("/api/generate", {"model": "spark", "prompt": "x = ", "suffix": "\n# [Mode: Codex]\n", "stream": False},
     "codex"),
    ("/api/chat", {"model": "codex", "messages": [{"role": "user", "content": "[Mode: Spark] hi"}], "stream": False},
     "spark"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "route"), SURFACES)
def test_the_tag_pins_the_engine_and_is_removed(
    client: TestClient, fakes: dict[str, FakeBackend], path: str, body: dict[str, Any], route: str
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["X-Codespark-Engine"] == route
    assert "[Mode:" in r.headers["X-Codespark-Route-Reason"] and "tag removed" in r.headers["X-Codespark-Route-Reason"]
    assert fakes[route].prompts and "mode" not in _seen(fakes).lower()


def test_no_tag_no_pin(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "modes are fun"}]})
    assert r.headers["X-Codespark-Engine"] == "codex" and "Mode" not in r.headers["X-Codespark-Route-Reason"]


@pytest.mark.parametrize(
    ("text", "out", "mode"),
    [
        ("[Mode: Spark] hi", "hi", "spark"),
        ("a [ mode : CODEX ]\nb", "a b", "codex"),
        ("[Mode: Spark] x [Mode: Codex] y", "x y", "codex"),  # the last one counts
        ("[Mode: Turbo] x", "[Mode: Turbo] x", None),
        ("plain", "plain", None),
    ],
)
def test_take(text: str, out: str, mode: str | None) -> None:
    assert modes.take(text) == (out, mode)


def test_internal_callers_keep_the_text_as_it_is(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    """The fix loop, the SQL assistant and other library callers send code, where a tag is just text."""
    import asyncio

    from codespark.engine.backend import SamplingParams
    from codespark.engine.chat import Message
    from codespark.services.chat import ChatCall

    state = client.app.state.codespark  # type: ignore[attr-defined]
    call = ChatCall([Message("user", "x = '[Mode: Spark]'")], SamplingParams(max_tokens=4), model="codex")

    async def run() -> str:
        decision, events = await state.chat.chat(call)
        async for _ in events:
            pass
        return str(decision.route)

    assert asyncio.run(run()) == "codex" and "[Mode: Spark]" in fakes["codex"].prompts[-1]
