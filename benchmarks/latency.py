"""Editing replay: keystroke latency of FIM servers on real typing, with quality beside it.

For each of several real stdlib files, at evenly spaced code lines, the line is
removed and typed back character by character (after its indentation, which an
editor inserts), with an ``/infill`` request every ``--step`` characters, the
way llama.vim calls llama-server.  The context is 128 lines before and 32
after the cursor.  Before typing a line the client sends one warm-up request
(``n_predict: 0``) when the cursor lands, and waits for it; typing requests are
sent one after another, each streamed, and timed on the client: time to first
content (TTFT) and to the end.

``--lines N`` removes N consecutive lines at each point and types them all
(Enter and the editor's indentation count as one keystroke).  ``--cps C``
types at C characters per second instead of back to back: each request is
sent at its keystroke's time whether or not the previous one has answered
(the server supersedes it), as an editor does while the user types on.  Only
requests that were not superseded count in the latency figures; the share of
superseded ones is reported beside them.

Servers, in the same run: codespark in its default configuration (the router
decides), codespark pinned to spark and to codex, llama.cpp's llama-server
(PSM with ``--cache-reuse``, and ``--spm-infill``), built by ``benchmarks/peers.py``,
and llama-cpp-python's own server (``llama-cpp-python-0.5b``; its FIM is broken,
so it gets the same PSM prompt as text on ``/v1/completions``, and no pass rate).

    python benchmarks/latency.py --configs codespark llama-psm --points 3

``--jumps N`` replays cursor jumps instead (``JUMPS_FILES``): per file, the first keystroke in a
new session with nothing cached (a freshly opened file, no warm-up), then the client's warm-up
where the file was opened, then N jumps to other lines of the same file (3-55 lines up or down),
typing the line's first characters there with no warm-up at the new place; ``--pause S`` waits S
seconds before each jump (the user finding the place; 0: back to back).  Requests carry
llama.vim's default budgets (``t_max_prompt_ms`` 500, ``t_max_predict_ms`` 1000).  It reports the TTFT of
the first and second keystroke after each jump (p50/p95), and the cold first keystroke.
"""

from __future__ import annotations

import argparse
import difflib
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.fim_quality import DATA, evaluate, load_tasks
from benchmarks.harness import codespark_server
from benchmarks.peers import llama_cpp_python_server, llama_server
from codespark.config import Settings
from codespark.models.catalog import find

STDLIB_FILES = ("textwrap.py", "csv.py", "shlex.py", "fnmatch.py", "tokenize.py")
JUMPS_FILES = ("textwrap.py", "shlex.py", "tokenize.py")
JUMP_OFFSETS = (-12, 30, -3, 55, -40, 18, -25, 7, -55, 3, 44, -18)
N_PREFIX_LINES, N_SUFFIX_LINES = 128, 32


@dataclass(frozen=True)
class Point:
    """``count`` consecutive lines from ``index`` on, to be removed and typed back."""

    file: str
    lines: list[str]
    index: int
    count: int = 1

    @property
    def before(self) -> str:
        return "".join(self.lines[max(0, self.index - N_PREFIX_LINES) : self.index])

    @property
    def after(self) -> str:
        end = self.index + self.count
        return "\n" + "".join(self.lines[end : end + N_SUFFIX_LINES])

    def keystrokes(self, step: int) -> Iterator[tuple[int, str, str]]:
        """(keystrokes so far, prefix, rest of the line) for each request while the lines are typed."""
        before = self.before
        typed_lines = ""
        keys = 0
        for line in self.lines[self.index : self.index + self.count]:
            text = line.strip()
            indent = _indent(line)
            keys += 1 if typed_lines else 0  # Enter (the editor indents)
            for n in range(step, len(text) + 1, step):
                yield keys + n, before + typed_lines + indent + text[:n], text[n:]
            keys += len(text)
            typed_lines += indent + text + "\n"

    @property
    def first_indent(self) -> str:
        return _indent(self.lines[self.index])


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _typable(line: str) -> bool:
    stripped = line.strip()
    return (
        20 <= len(stripped) <= 70
        and not stripped.startswith(("#", '"', "'", "@"))
        and any(c in line for c in "=(")
        and line.startswith("    ")
    )


def stdlib_file(name: str) -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["stdlib"]) / name


def pick_points(per_file: int, count: int = 1) -> list[Point]:
    """Evenly spaced runs of ``count`` code lines (20-70 characters, not comments or docstrings) per file."""
    points = []
    for name in STDLIB_FILES:
        lines = stdlib_file(name).read_text().splitlines(keepends=True)
        ok = [
            i
            for i in range(N_PREFIX_LINES // 2, len(lines) - 4 - count)
            if all(_typable(line) for line in lines[i : i + count])
        ]
        step = len(ok) // per_file
        points += [Point(name, lines, ok[step // 2 + k * step], count) for k in range(per_file)]
    return points


def _psm(body: dict[str, Any]) -> dict[str, Any]:
    """An /infill body as a raw Qwen PSM prompt for ``/v1/completions`` (servers with no FIM endpoint)."""
    prompt = "<|fim_prefix|>" + body["input_prefix"] + "<|fim_suffix|>" + body["input_suffix"] + "<|fim_middle|>"
    return {"prompt": prompt, "max_tokens": max(1, body["n_predict"]), "temperature": 0}


def stream_request(
    http: httpx.Client,
    base: str,
    body: dict[str, Any],
    session: str,
    protocol: str = "infill",
    timings: dict[str, Any] | None = None,
) -> tuple[float, float, str, str | None]:
    """(ttft_ms, total_ms, content, finish_reason) for one streamed request; the server's ``timings``
    (llama-server's, and codespark's) go into ``timings`` when given.

    ``protocol``: "infill" (llama-server's /infill), or "completions" (the same prompt as raw PSM text).
    """
    url, payload = (base + "/infill", body) if protocol == "infill" else (base + "/v1/completions", _psm(body))
    started = time.perf_counter()
    first: float | None = None
    finish: str | None = None
    content = []
    with http.stream("POST", url, json={**payload, "stream": True}, headers={"X-Session": session}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            choice = data["choices"][0] if protocol == "completions" else data
            piece = choice.get("text" if protocol == "completions" else "content") or ""
            if piece and first is None:
                first = time.perf_counter()
            content.append(piece)
            if timings is not None and isinstance(data.get("timings"), dict):
                timings.update(data["timings"], model=data.get("model"))
            if data.get("stop") or choice.get("finish_reason"):
                finish = choice.get("finish_reason")
                break
    end = time.perf_counter()
    return ((first or end) - started) * 1000, (end - started) * 1000, "".join(content), finish


def replay(
    base: str, points: list[Point], step: int, n_predict: int, model: str | None, cps: float, protocol: str
) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    warmups: list[float] = []
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=64)) as http:
        for p in points:
            common = {
                "input_suffix": p.after,
                "n_predict": n_predict,
                "t_max_predict_ms": 1000,
                "temperature": 0,
                **({"model": model} if model else {}),
            }
            warm_up = {**common, "input_prefix": p.before + p.first_indent, "n_predict": 0}
            warmups.append(stream_request(http, base, warm_up, p.file, protocol)[1])

            def one(prefix: str, rest: str, body: dict[str, Any] = common, point: Point = p) -> None:
                ttft, total, content, finish = stream_request(
                    http, base, {**body, "input_prefix": prefix}, point.file, protocol
                )
                records.append(
                    {
                        "file": point.file,
                        "line": point.index + 1,
                        "ttft_ms": ttft,
                        "total_ms": total,
                        "superseded": finish == "cancelled",
                        "predicted_rest": bool(rest) and content.startswith(rest),
                    }
                )
                print(f"\r  {len(records)} requests, last TTFT {ttft:7.0f} ms", end="", file=sys.stderr, flush=True)

            t0 = time.perf_counter()
            threads = []
            for keys, prefix, rest in p.keystrokes(step):
                if cps <= 0:
                    one(prefix, rest)  # back to back: each request waits for the previous answer
                    continue
                time.sleep(max(0.0, t0 + keys / cps - time.perf_counter()))
                thread = threading.Thread(target=one, args=(prefix, rest))
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join()
    print(file=sys.stderr)
    shown = [r for r in records if not r["superseded"]]
    ttfts = sorted(r["ttft_ms"] for r in shown)
    return {
        "requests": len(records),
        "superseded": len(records) - len(shown),
        "ttft_p50_ms": statistics.median(ttfts),
        "ttft_p95_ms": ttfts[int(0.95 * (len(ttfts) - 1))],
        "total_p50_ms": statistics.median(r["total_ms"] for r in shown),
        "warmup_p50_ms": statistics.median(warmups),
        "rest_of_line_predicted": sum(r["predicted_rest"] for r in shown) / len(shown),
        "records": records,
    }


def _near_typable(lines: list[str], target: int) -> int | None:
    """The typable code line nearest ``target`` (within 3 lines), with room for the windows."""
    for d in (0, 1, -1, 2, -2, 3, -3):
        i = target + d
        if N_PREFIX_LINES // 4 <= i < len(lines) - 4 and _typable(lines[i]):
            return i
    return None


def jump_points(name: str, jumps: int) -> list[Point]:
    """Where the file is opened (a line past its first window), then the lines jumped to."""
    lines = stdlib_file(name).read_text().splitlines(keepends=True)
    start = _near_typable(lines, len(lines) // 2)
    assert start is not None, name
    points = [Point(name, lines, start)]
    for offset in JUMP_OFFSETS * (jumps // len(JUMP_OFFSETS) + 1):
        if len(points) > jumps:
            break
        target = _near_typable(lines, points[-1].index + offset)
        if target is not None and target != points[-1].index:
            points.append(Point(name, lines, target))
    return points


def _rest_of_line(answer: str) -> str:
    """The first line of an answer, stripped: what the user sees completing the line."""
    return answer.split("\n", 1)[0].strip()


def jump_replay(
    base: str, jumps: int, step: int, n_predict: int, model: str | None, protocol: str, pause: float = 0.0
) -> dict[str, Any]:
    """The cursor-jump replay (``--jumps``): cold first keystroke, warm-up, then jumps with two keystrokes each,
    ``pause`` seconds apart (the user finding the next place; 0: back to back)."""
    records: list[dict[str, Any]] = []
    cold: list[float] = []
    with httpx.Client(timeout=600) as http:
        for name in JUMPS_FILES:
            opened, *targets = jump_points(name, jumps)

            def keystroke(p: Point, n: int, session: str) -> tuple[float, dict[str, Any]]:
                text = p.lines[p.index].strip()
                body = {"input_prefix": p.before + p.first_indent + text[:n], "input_suffix": p.after,
                        "n_predict": n_predict, "t_max_prompt_ms": 500, "t_max_predict_ms": 1000, "temperature": 0,
                        **({"model": model} if model else {})}  # fmt: skip
                timings: dict[str, Any] = {}
                ttft, _, content, _ = stream_request(http, base, body, session, protocol, timings)
                return ttft, {**timings, "content": content}

            cold.append(keystroke(opened, step, f"{name}:cold")[0])  # a new session: nothing cached
            warm_up = {"input_prefix": opened.before + opened.first_indent, "input_suffix": opened.after,
                       "n_predict": 0, **({"model": model} if model else {})}  # fmt: skip
            stream_request(http, base, warm_up, name, protocol)
            previous = opened
            for p in targets:
                time.sleep(pause)
                first, t1 = keystroke(p, step, name)
                second, _ = keystroke(p, 2 * step, name)
                truth, said = p.lines[p.index].strip()[step:], _rest_of_line(t1.get("content") or "")
                records.append({"file": name, "line": p.index + 1, "jump": p.index - previous.index,
                                "first_ms": first, "second_ms": second,
                                "prompt_n": t1.get("prompt_n"), "cache_n": t1.get("cache_n"),
                                "answer": t1.get("content"), "model": t1.get("model"), "timings": t1,
                                "line_exact": said == truth,
                                "line_similarity": difflib.SequenceMatcher(None, said, truth).ratio()})  # fmt: skip
                print(f"\r  {len(records)} jumps, last {first:7.0f} / {second:5.0f} ms", end="", file=sys.stderr)
                previous = p
    print(file=sys.stderr)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[int(q * (len(ordered) - 1))]

    firsts, seconds = [r["first_ms"] for r in records], [r["second_ms"] for r in records]
    return {
        "first_line_exact": sum(r["line_exact"] for r in records) / len(records),
        "first_line_similarity": statistics.mean(r["line_similarity"] for r in records),
        "jumps": len(records),
        "first_p50_ms": statistics.median(firsts),
        "first_p95_ms": pct(firsts, 0.95),
        "second_p50_ms": statistics.median(seconds),
        "second_p95_ms": pct(seconds, 0.95),
        "cold_first_ms": cold,
        "cold_first_p50_ms": statistics.median(cold),
        "records": records,
    }


def model_path(name: str) -> Path:
    spec = find(name)
    assert spec is not None
    return Settings().models_dir / spec.filename


@dataclass(frozen=True)
class Config:
    """A server to replay against: how to start it, the model field to send, and its protocol."""

    start: Callable[[], AbstractContextManager[str]]
    model: str | None = None
    protocol: str = "infill"


def configs(out: Path, env: dict[str, str] | None = None) -> dict[str, Config]:
    """The servers by name.  ``env``: settings for codespark."""
    spark, codex = model_path("spark"), model_path("codex")
    return {
        "codespark": Config(lambda: codespark_server(out / "codespark.log", env)),
        "codespark-spark": Config(lambda: codespark_server(out / "codespark.log", env), "spark"),
        "codespark-codex": Config(lambda: codespark_server(out / "codespark.log", env), "codex"),
        "llama-psm-0.5b": Config(lambda: llama_server(spark, ["--cache-reuse", "16"], out / "llama.log")),
        "llama-spm-0.5b": Config(
            lambda: llama_server(spark, ["--cache-reuse", "16", "--spm-infill"], out / "llama.log")
        ),
        "llama-psm-1.5b": Config(lambda: llama_server(codex, ["--cache-reuse", "16"], out / "llama.log")),
        # The cursor-jump comparison (issue 15): llama.vim's recommended --cache-reuse 256.
        "llama-psm-0.5b-reuse256": Config(lambda: llama_server(spark, ["--cache-reuse", "256"], out / "llama.log")),
        "llama-psm-1.5b-reuse256": Config(lambda: llama_server(codex, ["--cache-reuse", "256"], out / "llama.log")),
        # llama-cpp-python 0.3.36 builds FIM prompts with token id 0 for the FIM tokens (a "TODO: Fix" in
        # its source), so its ``suffix`` cannot be used: the replay sends the PSM prompt as text instead.
        "llama-cpp-python-0.5b": Config(
            lambda: llama_cpp_python_server(spark, out / "llama-cpp-python.log"), protocol="completions"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["codespark", "llama-psm-0.5b", "llama-spm-0.5b"])
    parser.add_argument("--points", type=int, default=3, help="lines typed per file (5 files; 0: quality only)")
    parser.add_argument("--step", type=int, default=3, help="characters typed between requests")
    parser.add_argument("--lines", type=int, default=1, help="consecutive lines typed at each point")
    parser.add_argument("--cps", type=float, default=0, help="typing speed, characters/s (0: back to back)")
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE settings for the codespark server")
    parser.add_argument("--n-predict", type=int, default=64)
    parser.add_argument("--jumps", type=int, default=0, help="cursor jumps per file (the jump replay; 0: typing)")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds before each jump (the user looks around)")
    parser.add_argument("--quality-tasks", type=int, default=100, help="HumanEval FIM tasks per config (0: skip)")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args()
    points = pick_points(args.points, args.lines)
    tasks = (
        load_tasks(DATA / "HumanEval-SingleLineInfilling.jsonl.gz", args.quality_tasks) if args.quality_tasks else []
    )
    table = configs(args.out, dict(kv.split("=", 1) for kv in args.env))
    results: dict[str, Any] = {}
    kind = "-jumps" if args.jumps else ""
    for name in args.configs:
        config = table[name]
        print(f"{name}: replaying {len(points)} lines", file=sys.stderr)
        with config.start() as base:
            if args.jumps:
                result = jump_replay(
                    base, args.jumps, args.step, args.n_predict, config.model, config.protocol, args.pause
                )
            elif points:
                result = replay(base, points, args.step, args.n_predict, config.model, args.cps, config.protocol)
            else:
                result = {}
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"latency-{name}{kind}.json").write_text(json.dumps(result, indent=1) + "\n")
            if tasks and config.protocol == "infill":  # the quality harness speaks /infill
                quality = evaluate(base, config.model or "auto", tasks, 64)
                result["fim_pass_rate"] = quality["pass_rate"]
        results[name] = result
        if args.jumps:
            print(f"{name}: after a jump, first keystroke p50 {result['first_p50_ms']:.0f} / p95 "
                  f"{result['first_p95_ms']:.0f} ms, second p50 {result['second_p50_ms']:.0f} / p95 "
                  f"{result['second_p95_ms']:.0f} ms; cold first keystroke p50 {result['cold_first_p50_ms']:.0f} ms; "
                  f"first answers: the line exactly {result['first_line_exact']:.2f}, similarity "
                  f"{result['first_line_similarity']:.2f}",
                  flush=True)  # fmt: skip
        print(
            f"{name}: TTFT p50 {result.get('ttft_p50_ms', float('nan')):.0f} ms, "
            f"p95 {result.get('ttft_p95_ms', float('nan')):.0f} ms, "
            f"pass rate {result.get('fim_pass_rate', float('nan')):.2f}",
            flush=True,
        )
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"latency-{name}{kind}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
