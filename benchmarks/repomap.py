"""The chat repo map at scale: a generated repo of N Python files that import each other.

Reports the index time, then for the PageRank over the import graph the time and peak memory of
the sparse power iteration we ship beside the dense n x n matrices it replaced (kept here as the
reference, the same algorithm), and the time of ``RepoContext.repo_map`` cold (graph built) and
warm (graph cached until the next refresh).

Usage: python benchmarks/repomap.py [--files 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import cpu_name, print_report
from codespark.context.repomap import _graph, pagerank
from codespark.context.service import RepoContext


def dense_pagerank(
    nodes: list[str], edges: list[tuple[str, str, float]], focus: list[str], damping: float = 0.85
) -> dict[str, float]:
    """The dense version this project shipped before (two n x n float64 matrices), for comparison."""
    n = len(nodes)
    at = {node: i for i, node in enumerate(nodes)}
    weights = np.zeros((n, n))
    for source, target, weight in edges:
        weights[at[target], at[source]] += weight
    out_sums = weights.sum(axis=0)
    transition = np.divide(weights, out_sums, out=np.zeros_like(weights), where=out_sums > 0)
    personal = np.zeros(n)
    for node in focus:
        if node in at:
            personal[at[node]] = 1.0
    personal = personal / personal.sum() if personal.sum() > 0 else np.full(n, 1.0 / n)
    rank = np.full(n, 1.0 / n)
    dangling = out_sums == 0
    for _ in range(100):
        updated = damping * (transition @ rank + rank[dangling].sum() * personal) + (1 - damping) * personal
        if np.abs(updated - rank).sum() < 1e-9:
            rank = updated
            break
        rank = updated
    return {node: float(rank[i]) for i, node in enumerate(nodes)}


def make_repo(root: Path, files: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(files):
        package = root / f"pkg{i % 50:02d}"
        package.mkdir(parents=True, exist_ok=True)
        imports = sorted({rng.randrange(files) for _ in range(rng.randint(1, 6))} - {i})
        lines = [f"from pkg{j % 50:02d}.mod{j:05d} import func_{j}" for j in imports]
        lines += ["", "", f"def func_{i}(x: int) -> int:"]
        lines += [f"    x = func_{j}(x)" for j in imports] + ["    return x + 1", ""]
        lines += [f"class Model{i}:", "    def run(self) -> int:", f"        return func_{i}(1)", ""]
        (package / f"mod{i:05d}.py").write_text("\n".join(lines))


def measure(fn: Callable[[], object], repeats: int = 3) -> dict[str, float]:
    times, peaks = [], []
    for _ in range(repeats):
        tracemalloc.start()
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return {"ms_median": round(statistics.median(times), 1), "peak_mb": round(max(peaks), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "repo", Path(tmp) / "cache"
        make_repo(root, args.files)
        context = RepoContext(root, cache)
        started = time.perf_counter()
        report = context.refresh()
        index_s = time.perf_counter() - started
        nodes, edges = _graph(context.index)
        focus = nodes[:2]
        report_out: dict[str, Any] = {
            "cpu": cpu_name(),
            "files": report.files,
            "edges": len(edges),
            "index_s": round(index_s, 1),
            "pagerank_sparse": measure(lambda: pagerank(nodes, edges, focus)),
            "pagerank_dense": measure(lambda: dense_pagerank(nodes, edges, focus), repeats=1),
        }
        started = time.perf_counter()
        context.repo_map(1024, "pkg00/mod00000.py")
        report_out["repo_map_cold_ms"] = round((time.perf_counter() - started) * 1000, 1)
        report_out["repo_map_warm"] = measure(lambda: context.repo_map(1024, "pkg01/mod00001.py"))
        context.index.close()
    print_report(report_out, args.json)


if __name__ == "__main__":
    main()
