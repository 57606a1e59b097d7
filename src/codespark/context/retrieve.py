"""Context for a completion at (file, cursor): cross-file definitions first, then similar code.

**Resolution.** The names used near the cursor are resolved through the
file's own imports (``import m as a``, ``from m import n``, relative imports,
re-exports in ``__init__``) to their definitions in other files, and through
simple local typing (``x = Client(…)``, ``x: Client``) to methods of known
classes.  A class comes as a skeleton (signature, docstring, method
signatures), a function as its signature and docstring: what a model needs to
call them right.

**Similar code.** BM25 (bm25s) over 12-line chunks of the other files, and
over the snippets a client sends from open or recently edited files (a 20-line
chunk costs ~200 tokens, too much of a small budget for one example).

Pieces are ranked (definitions used nearest the cursor first) and packed into
a token budget, then ordered by path, so that the context, and the spark
path's anchored KV cache, stays the same while the user types on one line.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import PurePosixPath

import bm25s

from codespark.context.index import RepoIndex, SymbolRow, module_name
from codespark.context.parse import Import, parse

CHUNK_LINES = 12
NEAR_LINES = 40
CHARS_PER_TOKEN = 3.5
MAX_METHODS = 12
MAX_BRIEF = 16
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHAIN = re.compile(r"(?<![\w.])((?:self\.)?[A-Za-z_]\w*)\.([A-Za-z_]\w*)")
_ASSIGNED = re.compile(
    r"(?<![\w.])((?:self\.)?[A-Za-z_]\w*)[ \t]*(?::[ \t]*([A-Za-z_][\w.]*))?[ \t]*=[ \t]*([A-Za-z_][\w.]*)\("
)
_ANNOTATED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)[ \t]*:[ \t]*(?:Optional\[)?([A-Z][\w.]*)")


@dataclass(frozen=True)
class Snippet:
    path: str
    text: str
    score: float
    reason: str

    @property
    def tokens(self) -> int:
        return int(len(self.text) / CHARS_PER_TOKEN) + 8


def code_tokens(text: str) -> list[str]:
    """Identifier parts, lower-cased: ``sendMessage``/``send_message`` -> ``send``, ``message``."""
    out: list[str] = []
    for ident in _IDENT.findall(text):
        for part in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", ident):
            if len(part) > 1:
                out.append(part.lower())
    return out


class Retriever:
    """Retrieval over one ``RepoIndex``.  The BM25 index of chunks is built on first use."""

    def __init__(self, index: RepoIndex) -> None:
        self.index = index
        self._chunks: list[tuple[str, int, str]] = []  # (path, first line, text)
        self._bm25: bm25s.BM25 | None = None
        self._lock = threading.Lock()
        # Look-up caches: the index does not change under a Retriever (a refresh makes a new one).
        self._module_files: dict[str, list[str]] = {}
        self._symbols: dict[str, list[SymbolRow]] = {}
        self._imports: dict[str, list[Import]] = {}

    def _files_for_module(self, module: str) -> list[str]:
        if module not in self._module_files:
            self._module_files[module] = self.index.files_for_module(module)
        return self._module_files[module]

    def _symbols_in(self, path: str) -> list[SymbolRow]:
        if path not in self._symbols:
            self._symbols[path] = self.index.symbols_in(path)
        return self._symbols[path]

    def _imports_of(self, path: str) -> list[Import]:
        if path not in self._imports:
            self._imports[path] = self.index.imports_of(path)
        return self._imports[path]

    # ----------------------------------------------------------------------------- similar code

    def _ensure_bm25(self) -> bm25s.BM25:
        with self._lock:
            if self._bm25 is None:
                corpus: list[list[str]] = []
                for (path,) in self.index.conn.execute("SELECT path FROM files ORDER BY path").fetchall():
                    try:
                        lines = (self.index.root / path).read_text(errors="replace").splitlines()
                    except OSError:
                        continue
                    for start in range(0, len(lines), CHUNK_LINES):
                        text = "\n".join(lines[start : start + CHUNK_LINES])
                        tokens = code_tokens(text)
                        if len(tokens) >= 5:
                            self._chunks.append((path, start + 1, text))
                            corpus.append(tokens)
                model = bm25s.BM25()
                if corpus:
                    model.index(corpus, show_progress=False)
                self._bm25 = model
            return self._bm25

    def similar(self, path: str, prefix: str, k: int = 4) -> list[Snippet]:
        """Chunks of other files most like the code just before the cursor."""
        model = self._ensure_bm25()
        query = code_tokens("\n".join(prefix.splitlines()[-12:]))
        if not query or not self._chunks:
            return []
        try:
            ids, scores = model.retrieve([query], k=min(len(self._chunks), k * 4), show_progress=False)
        except (ValueError, KeyError):  # no query token is in the vocabulary
            return []
        out: list[Snippet] = []
        top = float(scores[0][0]) if scores.size and scores[0][0] > 0 else 1.0
        for i, score in zip(ids[0].tolist(), scores[0].tolist(), strict=True):
            chunk_path, line, text = self._chunks[int(i)]
            if chunk_path == path or score <= 0:
                continue
            out.append(Snippet(chunk_path, text, float(score) / top, f"similar code (lines {line}-)"))
            if len(out) == k:
                break
        return out

    # ----------------------------------------------------------------------------- resolution

    def definitions(self, path: str, prefix: str, suffix: str) -> list[Snippet]:
        """Definitions in other files of the names the file imports: those used nearest the cursor first,
        in full; the others as bare signatures (the model may be about to call one)."""
        if not path.endswith(".py"):
            return []
        # The file's imports from the index (an editor sends a window that may not reach them) and from
        # the text as it is now.
        imports = self._imports_of(path) + parse((prefix + suffix).encode(), "python").imports
        if not imports:
            return []
        here = module_name(path)
        bound = _bindings(imports, here, path.endswith("__init__.py"))
        types = _local_types(prefix)
        wanted: dict[tuple[str, str | None], float] = {}  # (bound name, attribute) -> weight
        for distance, line in enumerate(reversed(prefix.splitlines()[-NEAR_LINES:])):
            weight = 1.0 / (1 + distance / 4)
            for base, attr in _CHAIN.findall(line):
                key = types.get(base, base)
                if key in bound:
                    wanted[(key, attr)] = max(wanted.get((key, attr), 0), weight)
            for name in _IDENT.findall(line):
                name = types.get(name, name)
                if name in bound:
                    wanted[(name, None)] = max(wanted.get((name, None), 0), weight * 0.8)
        unused = [n for n in bound if "." not in n and bound[n][1] is not None and (n, None) not in wanted]
        for name in unused[:MAX_BRIEF]:  # imported, not used nearby: a low-ranked, brief signature
            wanted[(name, None)] = 0.0
        out: dict[str, Snippet] = {}
        for (name, attr), weight in sorted(wanted.items(), key=lambda kv: -kv[1]):
            found = self._resolve(bound[name], attr, brief=weight == 0.0)
            if found is None:
                continue
            file, text, what = found
            if file == path:
                continue
            key = f"{file}:{what}"
            score = 10 * weight if weight else 1.0
            if key not in out or out[key].score < score:
                out[key] = Snippet(file, text, score, f"definition of {name}{'.' + attr if attr else ''}")
        return list(out.values())

    def _resolve(
        self, target: tuple[str, str | None], attr: str | None, depth: int = 0, brief: bool = False
    ) -> tuple[str, str, str] | None:
        module, name = target
        if name is None:  # a module: ``mod.attr``
            return self._symbol_in_module(module, attr, None, brief) if attr else None
        found = self._symbol_in_module(module, name, attr, brief)
        if found is not None or depth > 2:
            return found
        for file in self._files_for_module(module):  # ``from pkg import mod`` or a re-export
            submodule = self._files_for_module(f"{module}.{name}")
            if submodule:
                return self._symbol_in_module(f"{module}.{name}", attr, None, brief) if attr else None
            sources = [i for i in self._imports_of(file) if name in (i.name, i.alias)]
            for source in sources:
                resolved = _absolute(source.module, source.level, module_name(file), file.endswith("__init__.py"))
                hit = self._resolve((resolved, name), attr, depth + 1, brief)
                if hit is not None:
                    return hit
        return None

    def _symbol_in_module(
        self, module: str, name: str | None, attr: str | None, brief: bool = False
    ) -> tuple[str, str, str] | None:
        if name is None:
            return None
        for file in self._files_for_module(module):
            symbols = self._symbols_in(file)
            top = next((s for s in symbols if s.name == name and s.parent is None), None)
            if top is None:
                continue
            if brief:
                init = next((s for s in symbols if s.parent == name and s.name == "__init__"), None)
                return file, top.signature + (f"\n    {init.signature} ..." if init else ""), name
            if top.kind == "class":
                return file, _class_skeleton(top, symbols, attr), name
            return file, _function_text(top), name
        return None


def _bindings(imports: list[Import], here: str, is_package: bool) -> dict[str, tuple[str, str | None]]:
    """Local name -> (absolute module, imported name or None for a module)."""
    bound: dict[str, tuple[str, str | None]] = {}
    for imp in imports:
        module = _absolute(imp.module, imp.level, here, is_package)
        if imp.name is None:
            local = imp.alias or imp.module.split(".")[0]
            bound[local] = (module if imp.alias else module.split(".")[0], None)
            if not imp.alias:
                bound.setdefault(module, (module, None))
        elif imp.name != "*":
            bound[imp.alias or imp.name] = (module, imp.name)
    return bound


def _absolute(module: str, level: int, here: str, is_package: bool) -> str:
    if level == 0:
        return module
    parts = here.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def _local_types(prefix: str) -> dict[str, str]:
    """``x = Client(...)``, ``x: Client = …`` and ``x: Client`` parameters: variable -> class name."""
    types: dict[str, str] = {}
    for var, annotation, call in _ASSIGNED.findall(prefix):
        cls = annotation or call
        if "." not in cls:
            types[var] = cls
    for var, annotation in _ANNOTATED.findall(prefix):
        if "." not in annotation:
            types.setdefault(var, annotation)
    return types


def _function_text(symbol: SymbolRow) -> str:
    body = f'    """{symbol.doc}"""\n    ...' if symbol.doc else "    ..."
    return f"{symbol.signature}\n{body}"


def _class_skeleton(
    cls: SymbolRow,
    symbols: list[SymbolRow],
    attr: str | None,
) -> str:
    lines = [cls.signature]
    if cls.doc:
        lines.append(f'    """{cls.doc}"""')
    methods = [s for s in symbols if s.parent == cls.name]
    methods.sort(key=lambda s: (s.name != attr, s.name != "__init__", s.name.startswith("_"), s.start_line))
    for method in methods[:MAX_METHODS]:
        lines.append(f"    {method.signature} ...")
        if method.name == attr and method.doc:
            lines.append(f'        """{method.doc}"""')
    return "\n".join(lines)


def pack(pieces: list[Snippet], budget_tokens: int) -> list[Snippet]:
    """The best pieces that fit ``budget_tokens``, one per path and text, in a stable (path) order."""
    chosen: list[Snippet] = []
    used = 0
    seen: set[tuple[str, str]] = set()
    for piece in sorted(pieces, key=lambda p: -p.score):
        if (piece.path, piece.text) in seen or used + piece.tokens > budget_tokens:
            continue
        chosen.append(piece)
        seen.add((piece.path, piece.text))
        used += piece.tokens
    return sorted(chosen, key=lambda p: (p.path, -p.score))


def merge_by_path(pieces: list[Snippet]) -> list[tuple[str, str]]:
    """One (path, text) per file, pieces of a file joined: the repo-level prompt has one block per file."""
    grouped: dict[str, list[str]] = {}
    for piece in pieces:
        grouped.setdefault(piece.path, []).append(piece.text)
    return [(path, "\n\n".join(texts)) for path, texts in grouped.items()]


def relative_to(root: str, filename: str) -> str:
    """``filename`` relative to the repo root, if it is inside it; else as given."""
    path = PurePosixPath(filename.replace("\\", "/"))
    try:
        return str(path.relative_to(PurePosixPath(root)))
    except ValueError:
        return str(path)
