"""End to end: the real server, the real models, the official ``openai`` client."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.integration.conftest import Server

pytestmark = pytest.mark.integration

AVERAGE_PREFIX = "def average(values):\n    total = sum(values)\n    "
AVERAGE_SUFFIX = "\n    return result\n\n\nprint(average([1, 2, 3]))\n"


def test_completion(server: Server) -> None:
    r = server.client().completions.create(
        model="spark", prompt="# Python\ndef is_even(n):\n", max_tokens=24, temperature=0
    )
    assert r.choices[0].text.strip()
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


def test_fim_fills_a_real_function_body_line_without_echoing_the_suffix(server: Server) -> None:
    r = server.client().completions.create(
        model="spark", prompt=AVERAGE_PREFIX, suffix=AVERAGE_SUFFIX, max_tokens=32, temperature=0
    )
    middle = r.choices[0].text
    assert "return result" not in middle and "print(" not in middle, middle
    namespace: dict[str, object] = {}
    exec(AVERAGE_PREFIX + middle + "\n    return result\n", namespace)
    assert namespace["average"]([1, 2, 3]) == 2  # type: ignore[operator]


def test_second_request_reuses_the_kv_cache(server: Server) -> None:
    client = server.client()
    prompt = "import os\n\n\ndef list_python_files(root):\n    "
    client.completions.create(model="spark", prompt=prompt, max_tokens=4, temperature=0)
    r = client.completions.create(model="spark", prompt=prompt + "files = []\n    ", max_tokens=4, temperature=0)
    assert r.usage is not None
    details = r.usage.prompt_tokens_details
    assert details is not None and (details.cached_tokens or 0) > 0


def test_chat_with_the_models_own_template(server: Server) -> None:
    r = server.client().chat.completions.create(
        model="codex",
        messages=[{"role": "user", "content": "What is 17 + 25? Reply with the number only."}],
        max_tokens=8,
        temperature=0,
    )
    assert "42" in (r.choices[0].message.content or "")
    assert r.choices[0].finish_reason in ("stop", "length")


def test_a_chat_answer_that_uses_a_module_that_does_not_exist_is_flagged(server: Server) -> None:
    """The real 1.5B writes the import it is asked for; the check after generation says it does not exist
    (the official client keeps the extension field in ``model_extra``)."""
    r = server.client().chat.completions.create(
        model="codex",
        messages=[{"role": "user", "content": "Write a short Python snippet that imports the module "
                   "`quickjsonparse_x` and calls quickjsonparse_x.parse('{}'). Only the code, in a python block."}],
        max_tokens=80,
        temperature=0,
    )  # fmt: skip
    assert "quickjsonparse_x" in (r.choices[0].message.content or "")
    checks = (r.model_extra or {}).get("codespark_checks") or []
    assert any("import quickjsonparse_x: no such module" in c for c in checks), (r.choices[0].message.content, checks)


def test_streaming_chat(server: Server) -> None:
    stream = server.client().chat.completions.create(
        model="spark",
        messages=[{"role": "user", "content": "Name a Python keyword."}],
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals and finals[-1] in ("stop", "length")


def test_streaming_completion(server: Server) -> None:
    stream = server.client().completions.create(
        model="spark", prompt="for i in range(10):\n", max_tokens=16, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in stream if c.choices)


def test_infill_endpoint(server: Server) -> None:
    r = httpx.post(
        server.base + "/infill",
        json={
            "input_prefix": AVERAGE_PREFIX,
            "input_suffix": AVERAGE_SUFFIX,
            "input_extra": [{"filename": "stats/helpers.py", "text": "def mean(xs):\n    return sum(xs) / len(xs)\n"}],
            "n_predict": 32,
            "t_max_predict_ms": 5000,
        },
        # Its own session: the same text in another session would be a typed-ahead hit, with no prompt.
        headers={"X-Session": "infill-endpoint"},
        timeout=120,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["content"].strip()
    assert "return result" not in body["content"]
    assert body["timings"]["prompt_n"] > 0 and body["timings"]["ttft_ms"] > 0


def test_client_disconnect_frees_the_engine(server: Server) -> None:
    payload = {
        "model": "spark",
        "prompt": "Numbers from 1 to 2000, one per line:\n1\n2\n3\n4\n",
        "max_tokens": 1500,
        "temperature": 0,
        "stream": True,
    }
    with httpx.Client(timeout=120) as http, http.stream("POST", server.base + "/v1/completions", json=payload) as r:
        lines = 0
        for line in r.iter_lines():
            if line.startswith("data: "):
                lines += 1
            if lines >= 3:
                break
    # The stream is closed: the engine must be free at once, not after 1,500 tokens (~40 s).
    deadline = time.monotonic() + 3
    busy = True
    while time.monotonic() < deadline:
        busy = httpx.get(server.base + "/health").json()["engines"]["spark"]["busy"]
        if not busy:
            break
        time.sleep(0.05)
    assert not busy


def test_bad_inputs_get_openai_errors_and_the_server_lives(server: Server) -> None:
    client = server.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="spark", prompt="x", max_tokens=10**6)
    assert "max_tokens" in str(info.value)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x")
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="spark", prompt="word " * 9000, max_tokens=16)
    assert "8192" in str(info.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="codex", messages=[], max_tokens=4)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="spark", prompt="x", temperature=5)
    raw = httpx.post(
        server.base + "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert raw.status_code == 400
    assert json.loads(raw.text)["error"]["type"] == "invalid_request_error"
    wrong_type = httpx.post(server.base + "/infill", json={"input_prefix": "x", "n_predict": "lots"})
    assert wrong_type.status_code == 400
    assert server.alive()
    assert httpx.get(server.base + "/health").status_code == 200


def test_models_list(server: Server) -> None:
    ids = {m.id for m in server.client().models.list()}
    assert {"spark", "codex"} <= ids


def test_a_rebound_host_name_is_refused_by_the_real_server(server: Server) -> None:
    r = httpx.get(server.base + "/v1/models", headers={"Host": "attacker.example"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert httpx.get(server.base + "/v1/models", timeout=10).status_code == 200  # 127.0.0.1:port
