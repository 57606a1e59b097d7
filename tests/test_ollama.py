"""The Ollama-compatible API, driven by the official ``ollama`` client against a real loopback server
(the fake backend behind it), plus the exact request shapes Continue sends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import ollama
import pytest

from codespark.config import Settings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines, aliases_for
from codespark.server.app import create_app
from tests.helpers import CALL, TEMPLATE, WEATHER, uvicorn_thread

SPARK_ID, CODEX_ID = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"


@pytest.fixture
def backends() -> dict[str, FakeBackend]:
    replies = {"weather": CALL, "capital": "Paris", "def add(": "return a + b"}
    return {
        "spark": FakeBackend(replies=replies, default="spark says hi", model_id=SPARK_ID, chat_template=TEMPLATE),
        "codex": FakeBackend(replies=replies, default="codex says hi", model_id=CODEX_ID, chat_template=TEMPLATE),
    }


@pytest.fixture
def base(backends: dict[str, FakeBackend]) -> Iterator[str]:
    routes = {route: Engine(b) for route, b in backends.items()}
    aliases = {a: route for route, b in backends.items() for a in aliases_for(b.model_id)}
    with uvicorn_thread(create_app(Settings(), Engines(routes, aliases))) as url:
        yield url


@pytest.fixture
def client(base: str) -> ollama.Client:
    return ollama.Client(host=base)


def test_generate_is_chat_on_the_named_model(client: ollama.Client, backends: dict[str, FakeBackend]) -> None:
    r = client.generate(model="qwen2.5-coder:1.5b", prompt="The capital of France?", system="Be brief.")
    assert r.response == "Paris" and r.done and r.done_reason == "stop"
    assert r.model == "qwen2.5-coder:1.5b" and (r.eval_count or 0) > 0 and (r.prompt_eval_count or 0) > 0
    prompt = backends["codex"].prompts[-1]
    assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt and "The capital of France?" in prompt


def test_generate_streams_ndjson(client: ollama.Client) -> None:
    parts = list(client.generate(model="codex", prompt="hello", stream=True))
    assert "".join(p.response for p in parts) == "codex says hi"
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done and parts[-1].done_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_a_suffix_is_fill_in_the_middle_on_spark(
    client: ollama.Client, backends: dict[str, FakeBackend], stream: bool
) -> None:
    out = client.generate(model="qwen2.5-coder:0.5b", prompt="def add(a, b):\n    ", suffix="\n\nprint(add(1, 2))",
                          stream=stream, options={"temperature": 0, "num_predict": 32})  # fmt: skip
    text = "".join(p.response for p in out) if stream else out.response  # type: ignore[union-attr]
    assert text == "return a + b"
    prompt = backends["spark"].prompts[-1]
    assert "<|fim_prefix|>" in prompt and "<|fim_suffix|>" in prompt and "print(add(1, 2))" in prompt


def test_raw_is_a_plain_completion(client: ollama.Client, backends: dict[str, FakeBackend]) -> None:
    r = client.generate(model="spark", prompt="# a comment\n", raw=True)
    assert r.response == "spark says hi"
    assert backends["spark"].prompts[-1] == "# a comment\n"  # no template around it


def test_chat_streamed_and_not(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "The capital of France?"}]
    assert client.chat(model="qwen2.5-coder:1.5b", messages=messages).message.content == "Paris"
    parts = list(client.chat(model="qwen2.5-coder:1.5b", messages=messages, stream=True))
    assert "".join(p.message.content or "" for p in parts) == "Paris" and parts[-1].done


def test_chat_with_tools_returns_calls_with_object_arguments(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat(model="codex", messages=messages, tools=[WEATHER])
    (call,) = r.message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris", "unit": "c"}
    streamed = list(client.chat(model="codex", messages=messages, tools=[WEATHER], stream=True))
    calls = [c for p in streamed for c in p.message.tool_calls or []]
    assert [c.function.name for c in calls] == ["get_weather"] and streamed[-1].done


def test_a_tool_result_turn_goes_through_the_template(client: ollama.Client, backends: dict[str, FakeBackend]) -> None:
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather",
                                                                           "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": '{"temp": 22}', "tool_name": "get_weather"},
    ]  # fmt: skip
    client.chat(model="codex", messages=messages, tools=[WEATHER])
    prompt = backends["codex"].prompts[-1]
    assert '"arguments": {"city": "Paris"}' in prompt and '<tool_response>\n{"temp": 22}' in prompt


def test_tags_show_ps_and_version(client: ollama.Client) -> None:
    names = [m.model for m in client.list().models]
    assert names == ["qwen2.5-coder:0.5b", "spark", "qwen2.5-coder:1.5b", "codex"]
    details = client.list().models[2].details
    assert details is not None and details.parameter_size == "1.5B" and details.format == "gguf"
    shown = client.show("qwen2.5-coder:1.5b")
    assert ".Suffix" in (shown.template or "") and "insert" in (shown.capabilities or [])
    assert [m.model for m in client.ps().models] == names


def test_unknown_models_and_images_get_ollama_errors(client: ollama.Client, base: str) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.generate(model="llama3:70b", prompt="hi")
    assert missing.value.status_code == 404 and "llama3:70b" in missing.value.error
    r = httpx.post(f"{base}/api/chat", json={"model": "codex", "messages": [{"role": "user", "content": "x",
                                                                             "images": ["aGk="]}]})  # fmt: skip
    assert r.status_code == 400 and isinstance(r.json()["error"], str) and "images" in r.json()["error"]
    r = httpx.post(f"{base}/api/generate", json={"model": "codex", "prompt": "x", "options": {"temperature": 9}})
    assert r.status_code == 400 and "temperature" in r.json()["error"]


def test_pulling_a_model_that_is_here_succeeds_and_another_is_a_404(client: ollama.Client) -> None:
    assert client.pull("qwen2.5-coder:1.5b").status == "success"
    assert [p.status for p in client.pull("spark", stream=True)][-1] == "success"
    with pytest.raises(ollama.ResponseError) as missing:
        client.pull("llama3:70b")
    assert missing.value.status_code == 404


def test_the_root_answers_as_ollamas_does(base: str) -> None:
    assert httpx.get(base + "/").text.startswith("Ollama is running") and httpx.head(base + "/").status_code == 200


def test_an_empty_prompt_loads_the_model(base: str) -> None:
    r = httpx.post(f"{base}/api/generate", json={"model": "qwen2.5-coder:1.5b"})
    assert r.status_code == 200 and r.json()["done"] and r.json()["done_reason"] == "load"


def test_continue_autocomplete_request_shape(base: str, backends: dict[str, FakeBackend]) -> None:
    """Continue's ``ollama`` provider (continuedev/continue, core/llm/llms/Ollama.ts): it first POSTs /api/show
    with ``{"name": model}``, reads ``parameters`` line by line with the regex below and enables FIM only
    when ``template`` contains ".Suffix"; then each completion is /api/generate with prompt=prefix, suffix,
    options (temperature, top_p, top_k, num_predict, stop, num_ctx, mirostat, num_thread, use_mmap, min_p),
    keep_alive in seconds and stream."""
    show = httpx.post(f"{base}/api/show", json={"name": "qwen2.5-coder:1.5b-base"}).json()
    assert all(re.match(r"^(\S+)\s+((?:\".*\")|\S+)$", line) for line in show["parameters"].split("\n"))
    assert ".Suffix" in show["template"]
    body = {
        "model": "qwen2.5-coder:1.5b-base",
        "prompt": "def add(a, b):\n    ",
        "suffix": "\n",
        "options": {"temperature": 0.01, "num_predict": 256, "stop": ["\n\n", "```"], "num_ctx": 8096,
                    "mirostat": None, "num_thread": None, "use_mmap": None},
        "keep_alive": 1800,
        "stream": True,
    }  # fmt: skip
    with httpx.stream("POST", f"{base}/api/generate", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert "".join(line["response"] for line in lines) == "return a + b" and lines[-1]["done"]
    assert "<|fim_suffix|>" in backends["codex"].prompts[-1]  # the -base name is the 1.5B here


def test_tabby_ollama_completion_request_shape(base: str, backends: dict[str, FakeBackend]) -> None:
    """Tabby's ``ollama/completion`` backend (TabbyML/tabby, crates/ollama-api-bindings/src/completion.rs) writes
    the whole FIM prompt from its ``prompt_template`` and sends it with template "{{ .Prompt }}" (no template)
    and options num_ctx, num_predict, seed, repeat_last_n, temperature.  It must take the FIM path, with the
    markers as control tokens, not as text."""
    body = {
        "model": "qwen2.5-coder:1.5b",
        "prompt": "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>",
        "template": "{{ .Prompt }}",
        "options": {"num_ctx": 2048, "num_predict": 64, "seed": 0, "repeat_last_n": 0, "temperature": 0.1},
    }
    with httpx.stream("POST", f"{base}/api/generate", json=body) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert "".join(line["response"] for line in lines) == "return a + b"
    codex = backends["codex"]
    tokens = codex._cache
    assert codex.special_token("<|fim_middle|>") in tokens and codex.special_token("<|fim_prefix|>") in tokens
    assert "<|fim_prefix|>" not in bytes(t for t in tokens if t < 256).decode()  # no marker left as text
