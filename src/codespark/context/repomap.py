"""A ranked, token-budgeted map of a repo's key symbols, for chat and repair.

Files are nodes; a file that imports a name defined at the top level of
another file links to it, weighted by how often it uses the name.  Personalised PageRank over that
graph, biased towards the files a request mentions, ranks the files; each
file contributes its top-level signatures, best files first, until the budget
is spent.  (PageRank is a few lines of numpy power iteration here: networkx's
needs scipy, a large dependency for one function.)
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from codespark.context.index import RepoIndex

CHARS_PER_TOKEN = 3.5


def pagerank(
    nodes: list[str], edges: list[tuple[str, str, float]], focus: list[str], damping: float = 0.85
) -> dict[str, float]:
    """Weighted, personalised PageRank by power iteration (dangling nodes jump by the personalisation)."""
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


def rank_files(index: RepoIndex, focus: list[str] | None = None) -> list[tuple[str, float]]:
    """Files by PageRank over the reference graph, personalised to ``focus`` when given."""
    paths = [row[0] for row in index.conn.execute("SELECT path FROM files ORDER BY path")]
    if not paths:
        return []
    # A file links to the files defining the names it imports, weighted by how often it uses them.
    edges = index.conn.execute(
        "SELECT i.path, s.path, SUM(COALESCE(r.count, 1)) FROM imports i "
        "JOIN symbols s ON s.name = i.name AND s.parent IS NULL "
        "LEFT JOIN refs r ON r.path = i.path AND r.name = COALESCE(i.alias, i.name) "
        "WHERE i.path != s.path GROUP BY i.path, s.path"
    ).fetchall()
    ranks = pagerank(paths, [(a, b, float(w)) for a, b, w in edges], focus or [])
    return sorted(ranks.items(), key=lambda kv: -kv[1])


def repo_map(index: RepoIndex, budget_tokens: int = 1024, focus: list[str] | None = None) -> str:
    """``path:`` then its top-level signatures, for the best-ranked files that fit ``budget_tokens``."""
    signatures: dict[str, list[str]] = defaultdict(list)
    for path, signature in index.conn.execute(
        "SELECT path, signature FROM symbols WHERE parent IS NULL ORDER BY path, start_line"
    ):
        signatures[path].append(signature)
    out: list[str] = []
    used = 0.0
    for path, _ in rank_files(index, focus):
        if not signatures.get(path):
            continue
        block = path + ":\n" + "\n".join(f"  {s}" for s in signatures[path][:20])
        cost = len(block) / CHARS_PER_TOKEN
        if used + cost > budget_tokens:
            continue
        out.append(block)
        used += cost
    return "\n".join(out)
