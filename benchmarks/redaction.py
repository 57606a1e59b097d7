"""The privacy guard, measured: recall, false positives on real code, and overhead.

- **Recall**: fake secrets and PII generated in every covered format (real
  prefixes, lengths, alphabets, Luhn for cards), planted in real-looking code
  and config files (``codespark.guard.corpus``).  A value counts as caught
  when it no longer appears anywhere in the redacted text.
- **False positives**: every ``.py`` file of the Python stdlib (its own test
  suites excluded: they plant fake keys on purpose) and two installed
  packages.  Every redaction is counted and listed by kind; none of this code
  holds a real secret, so each one that is not a real person's e-mail address
  is a false positive.
- **Overhead**: ``Redactor.redact`` on 1,000-token windows of real code (the
  0.5B's tokenizer counts the tokens), with and without a planted secret,
  plus restoring the same text: p50 and p95 over every window.

    python benchmarks/redaction.py --per-format 200 --json bench-out/redaction.json
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import secret_corpus as corpus
from codespark.guard.detectors import scan
from codespark.guard.redactor import Redactor

PACKAGES = ("rich", "httpx")
SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "__pycache__"}


def recall(per_format: int, seeds: int) -> dict[str, Any]:
    caught: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    missed: dict[str, list[str]] = {}
    for seed in range(seeds):
        for planted in corpus.generate(per_format, seed=seed):
            total[planted.fmt] += 1
            if planted.value in Redactor().redact(planted.text):
                missed.setdefault(planted.fmt, []).append(planted.value[:12] + "…")
            else:
                caught[planted.fmt] += 1
    return {
        "per_format": {fmt: {"caught": caught[fmt], "total": total[fmt]} for fmt in total},
        "caught": sum(caught.values()),
        "total": sum(total.values()),
        "missed_examples": {fmt: values[:3] for fmt, values in missed.items()},
    }


def code_roots() -> list[tuple[str, Path]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    site = Path(sysconfig.get_paths()["purelib"])
    return [("stdlib", stdlib)] + [(name, site / name) for name in PACKAGES]


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if not SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def false_positives() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, root in code_roots():
        lines = 0
        kinds: collections.Counter[str] = collections.Counter()
        examples: list[str] = []
        for path in python_files(root):
            text = path.read_text(encoding="utf-8", errors="replace")
            lines += text.count("\n") + 1
            for f in scan(text):
                kinds[f.kind] += 1
                if f.kind != "EMAIL" and len(examples) < 10:
                    examples.append(f"{path.relative_to(root)}: {f.kind} {text[f.start : f.end][:40]!r}")
        found = sum(kinds.values())
        not_email = found - kinds["EMAIL"]
        out[name] = {
            "lines": lines,
            "redactions": found,
            "by_kind": dict(kinds),
            "per_10k_lines": round(found / lines * 10_000, 3),
            "per_10k_lines_excluding_email": round(not_email / lines * 10_000, 3),
            "examples_excluding_email": examples,
        }
    lines = sum(v["lines"] for v in out.values())
    found = sum(v["redactions"] for v in out.values())
    emails = sum(v["by_kind"].get("EMAIL", 0) for v in out.values())
    out["all"] = {
        "lines": lines,
        "redactions": found,
        "per_10k_lines": round(found / lines * 10_000, 3),
        "per_10k_lines_excluding_email": round((found - emails) / lines * 10_000, 3),
    }
    return out


def token_counter() -> tuple[str, Callable[[str], int]]:
    """The spark model's tokenizer if it is provisioned, else ~3.6 characters per token."""
    try:
        import llama_cpp

        from codespark.config import load_settings
        from codespark.models.provision import resolve

        _, path = resolve("qwen2.5-coder-0.5b-instruct", load_settings().models_dir, provision=False)
        llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        return "qwen2.5-coder tokenizer", lambda text: len(llm.tokenize(text.encode(), add_bos=False, special=False))
    except Exception:  # a benchmark without the model still runs; the report says how it counted
        return "estimate: 3.6 characters per token", lambda text: round(len(text) / 3.6)


def windows(count_tokens: Callable[[str], int], tokens: int, n: int) -> list[str]:
    """``n`` windows of about ``tokens`` tokens, from different stdlib files."""
    files = [p for p in python_files(code_roots()[0][1]) if p.stat().st_size > 20_000]
    step = max(1, len(files) // n)
    out = []
    for path in files[::step][:n]:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        text = ""
        for line in lines[len(lines) // 3 :]:
            if count_tokens(text + line) > tokens:
                break
            text += line
        out.append(text)
    return out


def overhead(tokens: int, n: int, repeats: int) -> dict[str, Any]:
    how, count_tokens = token_counter()
    texts = windows(count_tokens, tokens, n)
    planted = corpus.generate(per_format=1, seed=99)
    timings: dict[str, list[float]] = {"clean": [], "with_secrets": [], "restore": []}
    for i, text in enumerate(texts):
        seeded = text + planted[i % len(planted)].text
        for _ in range(repeats):
            started = time.perf_counter()
            redactor = Redactor()
            redacted = redactor.redact(text)
            timings["clean"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            redactor = Redactor()
            redacted = redactor.redact(seeded)
            timings["with_secrets"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            restorer = redactor.stream()
            for k in range(0, len(redacted), 16):
                restorer.feed(redacted[k : k + 16])
            restorer.flush()
            timings["restore"].append((time.perf_counter() - started) * 1000)
    sizes = [count_tokens(t) for t in texts]
    return {
        "token_count": how,
        "windows": len(texts),
        "tokens_median": statistics.median(sizes),
        "chars_median": statistics.median(len(t) for t in texts),
        **{name: _quantiles(values) for name, values in timings.items()},
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(ordered[len(ordered) // 2], 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)], 3),
        "max_ms": round(ordered[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-format", type=int, default=200, help="planted files per format and seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=1000, help="prompt size for the overhead measurement")
    parser.add_argument("--windows", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = {
        "recall": recall(args.per_format, args.seeds),
        "false_positives": false_positives(),
        "overhead": overhead(args.tokens, args.windows, args.repeats),
    }
    rec = result["recall"]
    print(f"recall: {rec['caught']}/{rec['total']} = {rec['caught'] / rec['total']:.4f}")
    for fmt, row in rec["per_format"].items():
        if row["caught"] != row["total"]:
            print(f"  {fmt}: {row['caught']}/{row['total']}  e.g. {rec['missed_examples'].get(fmt)}")
    for name, row in result["false_positives"].items():
        print(
            f"false positives {name}: {row['redactions']} in {row['lines']} lines = {row['per_10k_lines']}/10k "
            f"({row['per_10k_lines_excluding_email']}/10k without e-mail) {row.get('by_kind', '')}"
        )
    ov = result["overhead"]
    print(f"overhead ({ov['windows']} windows, median {ov['tokens_median']} tokens, {ov['token_count']}):")
    for name in ("clean", "with_secrets", "restore"):
        print(f"  {name}: p50 {ov[name]['p50_ms']} ms  p95 {ov[name]['p95_ms']} ms  max {ov[name]['max_ms']} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
