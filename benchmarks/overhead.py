"""Server time outside llama.cpp per keystroke, this tree beside an earlier one, in one run.

Each tree is run in its own process (``PYTHONPATH=<tree>/src``) with the real models loaded in
process, through its own ``create_app`` and an in-process HTTP client.  The time is taken inside
the server (an ASGI wrapper: from the call until the last body byte is sent), so the client's
own cost is not counted.  A keystroke replay types lines of a real stdlib file one character per
request (128 lines above the cursor, 32 below, as editors send them).  For each request:

- **overhead** = server time - (prefill + decode + KV swap time the engine reports): what the
  server spends outside llama.cpp's evaluation (parsing, sessions, tokenizing, routing, context,
  formatting); for typed-ahead hits, with no evaluation at all, it is the whole request;
- the TTFT the engine reports.

Then the chat check: keystrokes pinned to codex, one chat request on codex, and the next
keystroke's TTFT (a warm cache answers in milliseconds; a wiped one re-evaluates the window).

Usage: python benchmarks/overhead.py --baseline e32aef2 [--lines 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out"
sys.path.insert(0, str(ROOT))
from benchmarks.harness import cpu_name, print_report, quantiles  # noqa: E402  (standard library and httpx only)


def _keystrokes(lines: int) -> list[tuple[str, str, str]]:
    """(session, prefix, suffix) per typed character, over ``lines`` lines of textwrap.py."""
    text = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text().splitlines(keepends=True)
    out = []
    for n, at in enumerate(range(150, 150 + 40 * lines, 40)):
        line = text[at]
        indent = len(line) - len(line.lstrip())
        above, below = "".join(text[at - 128 : at]), "".join(text[at + 1 : at + 33])
        for i in range(indent + 1, len(line.rstrip()) + 1):
            out.append((f"replay-{n}", above + line[:i], "\n" + below))
    return out


class _Timer:
    """ASGI wrapper: the server-side time of the last request, to the last body byte."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_ms = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()

        async def timed(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last_ms = (time.perf_counter() - started) * 1000

        await self.app(scope, receive, timed)


def child(lines: int) -> dict[str, Any]:
    """Run the replay on the codespark importable here (the tree in PYTHONPATH)."""
    from fastapi.testclient import TestClient

    from codespark.config import Settings
    from codespark.engine.loader import load_engines
    from codespark.server.app import create_app

    settings = Settings()
    engines = load_engines(settings)
    typed_ahead: list[float] = []
    answered: list[float] = []
    ttft: list[float] = []
    timer = _Timer(create_app(settings, engines))
    with TestClient(timer, base_url="http://localhost") as client:

        def infill(session: str, prefix: str, suffix: str, **extra: object) -> dict[str, Any]:
            r = client.post(
                "/infill",
                json={"input_prefix": prefix, "input_suffix": suffix, "n_predict": 16, **extra},
                headers={"X-Session": session},
            )
            wall = timer.last_ms
            body: dict[str, Any] = r.json()
            t = body["timings"]
            inside = t["prompt_ms"] + t["predicted_ms"] + t.get("session_swap_ms", 0.0)
            body["overhead_ms"] = wall - inside
            return body

        keystrokes = _keystrokes(lines)
        for session, prefix, suffix in keystrokes[:3]:  # the cold windows, not counted
            infill(session, prefix, suffix)
        for session, prefix, suffix in keystrokes:
            body = infill(session, prefix, suffix)
            t = body["timings"]
            (typed_ahead if t["typed_ahead"] else answered).append(body["overhead_ms"])
            if not t["typed_ahead"]:
                ttft.append(t["ttft_ms"])
        session, prefix, suffix = keystrokes[0]
        warm = [infill("chat-check", prefix + c, suffix, model="codex")["timings"] for c in ("", "x", "xy")]
        chat = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "model": "codex"}
        assert client.post("/v1/chat/completions", json=chat).status_code == 200
        after = infill("chat-check", prefix + "xyz", suffix, model="codex")["timings"]
    engines.close()
    return {
        "keystrokes": len(keystrokes),
        "overhead_typed_ahead_ms": quantiles(typed_ahead, 2),
        "overhead_model_answered_ms": quantiles(answered, 2),
        "ttft_model_answered_ms": quantiles(ttft, 2),
        "codex_keystroke_before_chat": {"ttft_ms": warm[-1]["ttft_ms"], "cache_n": warm[-1]["cache_n"]},
        "codex_keystroke_after_chat": {"ttft_ms": after["ttft_ms"], "cache_n": after["cache_n"]},
    }


def _worktree(ref: str) -> Path:
    path = OUT / "worktrees" / ref
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True)
    return path


def _run_tree(tree: Path, lines: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--lines", str(lines)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="A git ref to measure beside this tree (in a worktree).")
    parser.add_argument("--lines", type=int, default=4)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.lines)))
        return
    report: dict[str, Any] = {"cpu": cpu_name(), "command": " ".join(sys.argv)}
    if args.baseline:
        report["baseline"] = {"ref": args.baseline, **_run_tree(_worktree(args.baseline), args.lines)}
    report["this tree"] = _run_tree(ROOT, args.lines)
    print_report(report, args.json)


if __name__ == "__main__":
    main()
