"""Definitions, imports and references of one source file, with tree-sitter.

Python is first-class: classes, functions and methods with their signatures,
docstrings and line spans; ``import`` / ``from … import`` with aliases and
relative levels.  JavaScript/TypeScript, Go, Java and Rust get definitions and
imports.  References are the identifiers a file uses, for the repo graph.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from functools import cache

import tree_sitter as ts

LANGUAGES = {
    ".py": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".java": "java",
    ".rs": "rust",
}

# Definition node types per language -> kind.
_DEFINITIONS: dict[str, dict[str, str]] = {
    "python": {"class_definition": "class", "function_definition": "function"},
    "javascript": {
        "class_declaration": "class",
        "function_declaration": "function",
        "method_definition": "function",
        "generator_function_declaration": "function",
    },
    "typescript": {
        "class_declaration": "class",
        "interface_declaration": "class",
        "function_declaration": "function",
        "method_definition": "function",
        "type_alias_declaration": "type",
    },
    "go": {"function_declaration": "function", "method_declaration": "function", "type_spec": "class"},
    "java": {
        "class_declaration": "class",
        "interface_declaration": "class",
        "method_declaration": "function",
        "constructor_declaration": "function",
    },
    "rust": {
        "function_item": "function",
        "struct_item": "class",
        "enum_item": "class",
        "trait_item": "class",
        "function_signature_item": "function",
    },
}
_DEFINITIONS["tsx"] = _DEFINITIONS["typescript"]
_IMPORTS = {
    "python": ("import_statement", "import_from_statement"),
    "javascript": ("import_statement",),
    "typescript": ("import_statement",),
    "tsx": ("import_statement",),
    "go": ("import_spec",),
    "java": ("import_declaration",),
    "rust": ("use_declaration",),
}
_IDENTIFIER_TYPES = frozenset({"identifier", "type_identifier", "field_identifier", "property_identifier"})
MAX_SIGNATURE = 400


@cache
def _language(name: str) -> ts.Language:
    """The grammar from its maintained package (imported on first use)."""
    if name in ("typescript", "tsx"):
        import tree_sitter_typescript as tsg

        return ts.Language(tsg.language_tsx() if name == "tsx" else tsg.language_typescript())
    grammar = importlib.import_module(f"tree_sitter_{name}")
    return ts.Language(grammar.language())


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # class | function | method | type
    parent: str | None  # enclosing class, for methods
    start_line: int  # 1-based, inclusive
    end_line: int
    signature: str
    doc: str


@dataclass(frozen=True)
class Import:
    module: str  # dotted module (Python), source path (JS/TS), package path (Go/Java/Rust)
    name: str | None  # imported name (``from m import name``); None for ``import m``
    alias: str | None
    level: int = 0  # Python relative-import dots


@dataclass
class Parsed:
    language: str
    symbols: list[Symbol] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    references: dict[str, int] = field(default_factory=dict)
    has_errors: bool = False


def language_of(path: str) -> str | None:
    for suffix, name in LANGUAGES.items():
        if path.endswith(suffix):
            return name
    return None


def parse(source: bytes, language: str) -> Parsed:
    """Everything the index keeps about one file."""
    tree = ts.Parser(_language(language)).parse(source)
    out = Parsed(language, has_errors=tree.root_node.has_error)
    kinds = _DEFINITIONS[language]
    import_types = _IMPORTS[language]
    stack: list[tuple[ts.Node, str | None]] = [(tree.root_node, None)]
    while stack:
        node, parent = stack.pop()
        kind = kinds.get(node.type)
        child_parent = parent
        if kind is not None:
            symbol = _symbol(node, kind, parent, source, language)
            if symbol is not None:
                out.symbols.append(symbol)
                if symbol.kind == "class":
                    child_parent = symbol.name
        if node.type in import_types:
            out.imports.extend(_imports(node, source, language))
            continue
        if node.type in _IDENTIFIER_TYPES:
            name = _text(node, source)
            out.references[name] = out.references.get(name, 0) + 1
        stack.extend((child, child_parent) for child in reversed(node.children))
    out.symbols.sort(key=lambda s: s.start_line)
    return out


def _text(node: ts.Node | None, source: bytes) -> str:
    if node is None:
        return ""
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _symbol(node: ts.Node, kind: str, parent: str | None, source: bytes, language: str) -> Symbol | None:
    name = _text(node.child_by_field_name("name"), source)
    if not name:
        return None
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    signature = source[node.start_byte : end].decode("utf-8", "replace").rstrip().rstrip("{").rstrip()
    signature = re.sub(r"\s*\n\s*", " ", signature)[:MAX_SIGNATURE]
    if kind == "function" and parent is not None:
        kind = "method"
    return Symbol(
        name=name,
        kind=kind,
        parent=parent,
        start_line=node.start_point[0] + 1,
        end_line=node.end_point[0] + 1,
        signature=signature,
        doc=_docstring(body, source) if language == "python" else _leading_comment(node, source),
    )


def _docstring(body: ts.Node | None, source: bytes) -> str:
    if body is None or not body.named_children:
        return ""
    first = body.named_children[0]
    if first.type == "expression_statement" and first.named_children and first.named_children[0].type == "string":
        text = _text(first.named_children[0], source).strip("\"'rbuRBU \n")
        return text.strip().split("\n\n")[0][:300]
    return ""


def _leading_comment(node: ts.Node, source: bytes) -> str:
    previous = node.prev_named_sibling
    comment = previous is not None and previous.type in ("comment", "line_comment", "block_comment")
    if previous is not None and comment and node.start_point[0] - previous.end_point[0] <= 1:
        return re.sub(r"^[/*\s]+|[*/\s]+$", "", _text(previous, source))[:300]
    return ""


def _imports(node: ts.Node, source: bytes, language: str) -> list[Import]:
    if language != "python":
        return [Import(_module_text(node, source, language), None, None)]
    if node.type == "import_statement":
        out = []
        for child in node.named_children:
            if child.type == "aliased_import":
                out.append(Import(_text(child.child_by_field_name("name"), source), None, _alias(child, source)))
            else:
                out.append(Import(_text(child, source), None, None))
        return out
    module_node = node.child_by_field_name("module_name")
    module_text = _text(module_node, source)
    level = len(module_text) - len(module_text.lstrip("."))
    module = module_text.lstrip(".")
    out = []
    for child in node.named_children:
        if child == module_node:
            continue
        if child.type == "aliased_import":
            out.append(Import(module, _text(child.child_by_field_name("name"), source), _alias(child, source), level))
        elif child.type == "dotted_name":
            out.append(Import(module, _text(child, source), None, level))
        elif child.type == "wildcard_import":
            out.append(Import(module, "*", None, level))
    return out


def _alias(node: ts.Node, source: bytes) -> str | None:
    return _text(node.child_by_field_name("alias"), source) or None


def _module_text(node: ts.Node, source: bytes, language: str) -> str:
    text = _text(node, source)
    quoted = re.search(r"['\"]([^'\"]+)['\"]", text)
    if quoted:
        return quoted.group(1)
    words = re.sub(r"^(import|use)\s+(static\s+)?|;$", "", text.strip())
    return words.strip()
