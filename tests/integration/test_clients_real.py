"""Real clients against the real server and models: the official ``openai`` client's tools API and
``response_format``, the official ``ollama`` client, and llama.vim's whole request."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from tests.integration.conftest import Server

pytestmark = pytest.mark.integration

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris right now, in celsius?"}]


def test_openai_tools_required_gives_a_valid_call(server: Server) -> None:
    answer = server.client().chat.completions.create(
        model="codex",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,  # type: ignore[arg-type]
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = (choice.message.tool_calls or [])[0]
    assert call.type == "function" and call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments["unit"] in ("celsius", "fahrenheit") and "paris" in arguments["city"].lower()


def test_openai_tools_streamed_and_a_tool_result_turn(server: Server) -> None:
    client = server.client()
    stream = client.chat.completions.create(
        model="codex",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="auto",
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    )
    name, arguments, ident, finish = "", "", "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for piece in delta.tool_calls or []:
            ident = piece.id or ident
            name += (piece.function.name or "") if piece.function else ""
            arguments += (piece.function.arguments or "") if piece.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and name == "get_weather" and ident
    json.loads(arguments)  # streamed arguments join into valid JSON
    history = [
        *ASK,
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": ident, "content": json.dumps({"temperature": 21, "sky": "clear"})},
    ]  # fmt: skip
    # tool_choice "none" asks for the answer from the result (the 1.5B under auto tends to call again).
    final = client.chat.completions.create(model="codex", messages=history, tools=[WEATHER], tool_choice="none",  # type: ignore[arg-type]
                                           temperature=0)  # fmt: skip
    text = final.choices[0].message.content or ""
    assert final.choices[0].finish_reason == "stop" and "21" in text


def test_openai_response_format_json_schema(server: Server) -> None:
    schema = {"type": "object", "properties": {"language": {"type": "string"}, "year": {"type": "integer"}},
              "required": ["language", "year"], "additionalProperties": False}  # fmt: skip
    answer = server.client().chat.completions.create(
        model="codex",
        messages=[{"role": "user", "content": "In which year did Python 1.0 come out? Answer in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        temperature=0,
        max_tokens=64,
    )
    value = json.loads(answer.choices[0].message.content or "")
    assert set(value) == {"language", "year"} and isinstance(value["year"], int)


def test_an_invalid_tool_schema_is_a_400(server: Server) -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}
    r = httpx.post(server.base + "/v1/chat/completions", json={"messages": ASK, "tools": [bad]}, timeout=30)
    assert r.status_code == 400 and "JSON schema" in r.json()["error"]["message"]
    assert server.alive()


def test_the_ollama_client_generate_fim_chat_and_tags(server: Server) -> None:
    client = ollama.Client(host=server.base, timeout=300)
    names = [m.model for m in client.list().models]
    assert "qwen2.5-coder:0.5b" in names and "qwen2.5-coder:1.5b" in names
    fim = client.generate(model="qwen2.5-coder:0.5b", prompt="def add(a, b):\n    return ",
                          suffix="\n\n\nprint(add(2, 3))\n", options={"temperature": 0, "num_predict": 16})  # fmt: skip
    assert "a + b" in fim.response and fim.done
    parts = list(client.generate(model="qwen2.5-coder:1.5b", prompt="Say hello in one word.", stream=True,
                                 options={"temperature": 0, "num_predict": 16}))  # fmt: skip
    assert "".join(p.response for p in parts).strip() and parts[-1].done
    reply = client.chat(model="qwen2.5-coder:1.5b", messages=ASK, tools=[WEATHER], options={"temperature": 0})
    calls = reply.message.tool_calls or []
    assert calls and calls[0].function.name == "get_weather" and isinstance(calls[0].function.arguments, dict)


def test_llama_vim_full_request(server: Server) -> None:
    body = {
        "id_slot": 0, "input_prefix": "def area(width, height):\n", "input_suffix": "\n\nprint(area(2, 3))\n",
        "input_extra": [{"text": "def perimeter(w, h):\n    return 2 * (w + h)\n", "time": 1.0, "filename": "geo.py"}],
        "prompt": "    return ", "n_predict": 32, "n_indent": 4, "top_k": 40, "top_p": 0.99, "stream": False,
        "samplers": ["top_k", "top_p", "infill"], "cache_prompt": True, "t_max_prompt_ms": 500,
        "t_max_predict_ms": 3000,
        "response_fields": ["content", "timings/prompt_n", "timings/prompt_ms", "timings/predicted_n",
                            "timings/predicted_ms", "timings/predicted_per_second", "truncated", "tokens_cached"],
    }  # fmt: skip
    out = httpx.post(server.base + "/infill", json=body, timeout=300).json()
    assert "width" in out["content"] and "height" in out["content"] and "print(" not in out["content"]
    assert out["timings/predicted_n"] > 0 and "timings" not in out and out["truncated"] is False


def test_llama_cpp_parses_every_grammar_the_server_builds() -> None:
    """The binding's JSON-schema converter and llama.cpp's grammar parser agree on every schema feature the
    benchmark's tools use (enums, bounds, arrays, nested objects, patterns), for each tool choice."""
    from benchmarks.tool_calls import TOOLS

    from codespark.config import load_settings
    from codespark.engine.llama import LlamaBackend, LlamaOptions
    from codespark.engine.tools import ResponseFormat, answer_grammar, parse_tools
    from codespark.models.provision import resolve

    settings = load_settings()
    model_id, path = resolve(settings.spark_model, settings.models_dir, True)
    backend = LlamaBackend(path, model_id, LlamaOptions(n_ctx=512))
    tools = parse_tools(TOOLS)
    choices = ["auto", "required", *(t.name for t in tools)]
    grammars = [answer_grammar(tools, c, parallel) for c in choices for parallel in (True, False)]
    grammars += [answer_grammar(tools, "auto", True, ResponseFormat()), answer_grammar((), "none", True,
                 ResponseFormat({"type": "object", "properties": {"n": {"type": "integer"}}}))]  # fmt: skip
    import llama_cpp

    for grammar in grammars:
        assert grammar is not None
        handle = backend._grammar_sampler(grammar)
        llama_cpp.llama_sampler_free(handle)
