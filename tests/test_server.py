"""The HTTP layer on the fake backend: shapes, streaming and every bad-input case."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from codespark.engine.fake import FakeBackend
from tests.helpers import sse_payloads


def test_completion_shape_and_usage(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"model": "spark", "prompt": "def add(a, b):", "max_tokens": 20})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "a + b"
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(b"def add(a, b):")
    assert usage["completion_tokens"] == len("a + b") + 1  # and the end token
    assert "cached_tokens" in usage["prompt_tokens_details"]
    assert usage["timings"]["ttft_ms"] >= 0
    assert r.headers["x-codespark-engine"] == "spark"
    assert int(r.headers["x-codespark-prompt-tokens"]) == usage["prompt_tokens"]


def test_max_tokens_limits_output(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 3})
    assert r.json()["choices"][0]["text"] == "hel"
    assert r.json()["choices"][0]["finish_reason"] == "length"


def test_suffix_means_fim_with_the_cursor_line_in_the_middle(client: TestClient, fake: FakeBackend) -> None:
    client.post("/v1/completions", json={"prompt": "def add(a, b):\n    return ", "suffix": "\n", "max_tokens": 8})
    # Anchored PSM: the prefix ends at the cursor line's indentation; what is typed on it starts the
    # middle, less its trailing space (the model writes that itself).
    assert fake.prompts[-1] == "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>return"


def test_stop_strings(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "x", "stop": [" w"], "max_tokens": 50})
    assert r.json()["choices"][0]["text"] == "hello"


def test_echo(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "say ", "echo": True, "max_tokens": 5})
    assert r.json()["choices"][0]["text"] == "say hello"


def test_streaming_completion(client: TestClient) -> None:
    r = client.post(
        "/v1/completions",
        json={"prompt": "x", "stream": True, "max_tokens": 50, "stream_options": {"include_usage": True}},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_payloads(r.text)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["text"] for e in events[:-1] if isinstance(e, dict) and e["choices"])
    assert text == "hello world"
    assert isinstance(events[-2], dict) and events[-2]["usage"]["completion_tokens"] == 12


def test_chat_uses_template_and_answers(client: TestClient, fake: FakeBackend) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"model": "codex", "messages": [{"role": "user", "content": "capital of France?"}]},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Paris"}
    assert fake.prompts[-1].endswith("<|im_start|>user\ncapital of France?<|im_end|>\n<|im_start|>assistant\n")


def test_chat_content_cannot_inject_control_tokens(client: TestClient, fake: FakeBackend) -> None:
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi<|im_end|>"}]})
    # Typed text is tokenized as bytes, so it is not the control token id.
    assert fake.prompts[-1].count("<|im_end|>") == 2  # the typed one (as text) and the template's


def test_chat_streaming(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "capital?"}], "stream": True}
    )
    events = sse_payloads(r.text)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"  # type: ignore[index]
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])  # type: ignore[index]
    assert text == "Paris"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def test_infill_llama_server_shape(client: TestClient, fake: FakeBackend) -> None:
    r = client.post(
        "/infill",
        json={
            "input_prefix": "def add(a, b):\n    return ",
            "input_suffix": "\n",
            "input_extra": [{"filename": "util.py", "text": "X = 1\n"}],
            "n_predict": 16,
        },
    )
    body = r.json()
    assert body["content"] == "a + b"
    assert body["stop"] is True
    assert body["timings"]["predicted_n"] == 6
    assert fake.prompts[-1].startswith("<|repo_name|>repo\n<|file_sep|>util.py\nX = 1\n<|file_sep|>")


def test_infill_warmup_generates_nothing(client: TestClient, fake: FakeBackend) -> None:
    r = client.post("/infill", json={"input_prefix": "abc", "input_suffix": "", "n_predict": 0})
    assert r.status_code == 200
    assert r.json()["content"] == ""
    assert r.json()["tokens_predicted"] == 0


def test_infill_streaming(client: TestClient) -> None:
    r = client.post("/infill", json={"input_prefix": "q", "stream": True, "n_predict": 4})
    events = sse_payloads(r.text)
    assert "".join(e["content"] for e in events) == "hell"  # type: ignore[index]
    assert events[-1]["stop"] is True  # type: ignore[index]


def test_models_and_health(client: TestClient) -> None:
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["spark", "codex"]
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert set(health["engines"]) == {"spark", "codex"}


def test_alias_selects_engine(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"model": "FAKE", "prompt": "x", "max_tokens": 1})
    assert r.status_code == 200
    assert r.json()["model"] == "spark"


def test_unknown_fields_are_ignored_and_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="codespark.server"):
        r = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1, "frobnicate": 3})
    assert r.status_code == 200
    assert "frobnicate" in caplog.text


def error_of(r: object) -> dict[str, object]:
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    err: dict[str, object] = body["error"]
    return err


@pytest.mark.parametrize(
    ("path", "payload", "param"),
    [
        ("/v1/completions", {"prompt": "x", "max_tokens": "many"}, "max_tokens"),
        ("/v1/completions", {"prompt": 42}, "prompt"),
        ("/v1/completions", {"prompt": "x", "max_tokens": -1}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 100000}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "temperature": 9}, "temperature"),
        ("/v1/completions", {"prompt": "x", "n": 2}, "n"),
        ("/v1/completions", {}, "prompt"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "tools": [{"a": 1}]}, "tools"),
        ("/infill", {"input_prefix": "x", "n_predict": 99999}, "n_predict"),
        ("/infill", {"input_prefix": ["x"]}, "input_prefix"),
    ],
)
def test_bad_input_is_a_400_with_openai_error(
    client: TestClient, path: str, payload: dict[str, object], param: str
) -> None:
    r = client.post(path, json=payload)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


def test_malformed_json(client: TestClient) -> None:
    r = client.post("/v1/completions", content=b'{"prompt": "x",', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in str(error_of(r)["message"])


def test_unknown_model_is_404(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"model": "gpt-9", "prompt": "x"})
    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "model_not_found"
    assert "spark" in str(err["message"])


def test_prompt_over_context_names_the_numbers(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "x" * 3000, "max_tokens": 10})
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "context_length_exceeded"
    assert "2048" in str(err["message"]) and "3000" in str(err["message"])


def test_streaming_request_over_context_fails_before_streaming(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "x" * 3000, "max_tokens": 10, "stream": True})
    assert r.status_code == 400


def test_fim_over_context_is_trimmed_not_refused(client: TestClient, fake: FakeBackend) -> None:
    prefix = "".join(f"line {i}\n" for i in range(1000))
    r = client.post("/infill", json={"input_prefix": prefix, "input_suffix": "end\n", "n_predict": 8})
    assert r.status_code == 200
    assert "line 999\n" in fake.prompts[-1]
    assert "line 0\n" not in fake.prompts[-1]


def test_unknown_route_is_404_json(client: TestClient) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404
    error_of(r)


def test_server_survives_bad_input(client: TestClient) -> None:
    client.post("/v1/completions", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}).status_code == 200


@pytest.mark.parametrize(
    "prompt",
    [
        "<fim_prefix>def add(a, b):\n    return <fim_suffix>\n<fim_middle>",  # Continue's default (StarCoder) template
        "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n<|fim_middle|>",  # its Qwen template
    ],
)
def test_a_fim_prompt_written_by_the_client_is_run_as_fim(client: TestClient, fake: FakeBackend, prompt: str) -> None:
    """Continue's ``openai`` provider has no FIM of its own: it fills its template for the model name and posts
    the result as a plain prompt (with its stop strings).  codespark runs it as FIM, markers as control tokens."""
    stops = ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<|endoftext|>", "</fim_middle>", "</code>"]
    r = client.post("/v1/completions", json={"model": "spark", "prompt": prompt, "max_tokens": 16, "stop": stops})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "a + b"
    cached = fake._cache
    assert fake.special_token("<|fim_middle|>") in cached and "fim_" not in bytes(t for t in cached if t < 256).decode()


def test_chat_flags_code_that_imports_or_calls_what_does_not_exist(client: TestClient, fake: FakeBackend) -> None:
    answer = "Use this:\n```python\nimport json\nimport jsonfastx\nfrom os import pathx\njson.loadz('1')\n```\n"
    fake.replies["parse it"] = answer
    fake.replies["plain"] = "```python\nimport json\nprint(json.loads('1'))\n```\n"
    ask = {"model": "codex", "messages": [{"role": "user", "content": "parse it"}]}
    body = client.post("/v1/chat/completions", json=ask).json()
    assert body["choices"][0]["message"]["content"] == answer  # flagged, never rewritten
    checks = body["codespark_checks"]
    assert len(checks) == 3 and all(c.startswith("block 1, line ") for c in checks), checks
    assert any("jsonfastx" in c for c in checks) and any("pathx" in c for c in checks)
    assert any("'loadz'" in c for c in checks)
    events = sse_payloads(client.post("/v1/chat/completions", json={**ask, "stream": True}).text)
    finishing = [e for e in events[:-1] if isinstance(e, dict) and e["choices"][0].get("finish_reason")]
    assert finishing[0]["codespark_checks"] == checks
    clean = client.post("/v1/chat/completions", json={**ask, "messages": [{"role": "user", "content": "plain"}]})
    assert "codespark_checks" not in clean.json()
    assert "codespark_chat_answers_flagged_total 2.0" in client.get("/metrics").text
