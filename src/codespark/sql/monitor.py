"""The SQL monitor: while a query is generated, only real tables and columns may be written.

It reads the SQL written so far (a small lexer: words, quoted identifiers, strings, comments,
punctuation; parentheses open nested scopes) and, at a trigger point, names what may come next
from the introspected schema:

- after ``FROM``, ``JOIN`` or a ``,`` in a ``FROM`` list: the tables (and the CTEs defined so far);
- after ``alias.`` or ``table.``: the columns of exactly that table, or of every table when the
  alias is not defined yet (``SELECT T1.name FROM pets AS T1`` names ``T1`` before it exists);
- in a bare name position once the query's ``FROM`` is written (``WHERE``, ``ON``, ``GROUP BY``,
  after an operator or a comma): the columns of the tables in scope, plus the aliases, keywords,
  functions and output aliases that may stand there.

Anywhere else (the select list before ``FROM``, after ``AS``, inside a string) it is silent.
Names compare case-insensitively, and a name is written bare or in the dialect's quotes.  A
schema name that is not a plain word (``"Order Details"``) makes the position unconstrained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cache

from sqlglot.dialects.dialect import Dialect

from codespark.engine.mask import Names, is_word
from codespark.sql.schema import Schema

_LEXEME = re.compile(
    r"""(?P<ws>\s+)
      |(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
      |(?P<string>'(?:[^']|'')*(?:'|\Z))
      |(?P<quoted>"[^"]*(?:"|\Z)|`[^`]*(?:`|\Z)|\[[^\]]*(?:\]|\Z))
      |(?P<number>\d+(?:\.\d*)?)
      |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
      |(?P<punct>.)""",
    re.S | re.X,
)
_TABLE_AFTER = {"FROM", "JOIN", "UPDATE", "INTO"}
_NAME_AFTER = {"WHERE", "AND", "OR", "ON", "BY", "HAVING", "NOT", "WHEN", "THEN", "ELSE", "DISTINCT", "IN",
               "LIKE", "BETWEEN", "IS", "SET", "CASE"}  # fmt: skip
_NAME_AFTER_PUNCT = set(",(=<>!+-*/%|")
_JOINS = {"LEFT", "RIGHT", "INNER", "OUTER", "CROSS", "FULL", "NATURAL", "USING", "JOIN"}
_CLAUSES = {"WHERE", "GROUP", "ORDER", "HAVING", "LIMIT", "ON", "UNION", "INTERSECT", "EXCEPT", "WINDOW"}
# SQLite functions that sqlglot parses as anonymous calls (sqlite.org/lang_corefunc, lang_datefunc)
_SQLITE_EXTRA = {"julianday", "unixepoch", "timediff", "likelihood", "likely", "unlikely", "typeof", "total",
                 "printf", "iif", "soundex", "zeroblob", "randomblob", "changes", "last_insert_rowid", "glob",
                 "quote", "unicode", "char", "instr", "date", "time", "datetime", "strftime"}  # fmt: skip


@cache
def _vocabulary(dialect: str) -> frozenset[str]:
    """Keywords and function names of ``dialect`` that are plain words."""
    d = Dialect.get_or_raise(dialect)
    words = {k for k in d.tokenizer_class.KEYWORDS if is_word(k)}
    words |= {f for f in d.parser_class.FUNCTIONS if is_word(f)}
    words |= {"TRUE", "FALSE", "NULL", "ASC", "DESC", "NULLS", "FIRST", "LAST", "OVER", "PARTITION", "FILTER",
              "ROWS", "RANGE", "PRECEDING", "FOLLOWING", "UNBOUNDED", "CURRENT", "ROW"}  # fmt: skip
    if dialect == "sqlite":
        words |= _SQLITE_EXTRA
    return frozenset(words)


@dataclass
class _Lexeme:
    kind: str
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """A word, or a quoted identifier without its quotes."""
        return self.text[1:].rstrip('"`]') if self.kind == "quoted" else self.text


@dataclass
class _Frame:
    """One parenthesis level; a query frame once ``SELECT`` appears directly in it."""

    query: bool = False
    seen_from: bool = False
    in_from: bool = False
    tables: list[str] = field(default_factory=list)


@dataclass
class _State:
    """What the SQL so far defines: aliases, CTEs, output aliases, and the open scopes."""

    frames: list[_Frame] = field(default_factory=lambda: [_Frame()])
    aliases: dict[str, str] = field(default_factory=dict)  # alias (lower) -> table (lower)
    ctes: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)

    def query(self) -> _Frame:
        return next((f for f in reversed(self.frames) if f.query), self.frames[0])

    def scope(self) -> list[str]:
        return [t for f in self.frames for t in f.tables]


class SqlMonitor:
    """Names the tables and columns that may be written next, from ``schema``."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._tables = {t.name.lower(): t for t in schema.tables}
        self._all_columns = frozenset(c.name for t in schema.tables for c in t.columns)
        self._keywords = _vocabulary(schema.dialect)

    def names(self, text: str) -> Names | None:
        lexemes = [_Lexeme(m.lastgroup or "punct", m.group()) for m in _LEXEME.finditer(text)]
        partial = ""
        if lexemes and lexemes[-1].kind in ("word", "quoted"):
            last = lexemes.pop()
            closed = last.kind == "quoted" and len(last.text) > 1 and last.text[-1] in '"`]'
            if closed:
                lexemes.append(last)  # a whole quoted name: the position after it
            else:
                partial = last.name
        elif lexemes and lexemes[-1].kind in ("string", "comment") and not _closed(lexemes[-1]):
            return None
        state = _walk(lexemes)
        significant = [x for x in lexemes if x.kind not in ("ws", "comment")]
        if partial.upper() in _TABLE_AFTER | _NAME_AFTER:
            # ``FROM`` may be finished: constrain the identifier after it (``OR`` may still become ``ORDER``).
            word = _Lexeme("word", partial)
            after = self._position([*significant, word], _walk([*lexemes, word]), "")
            return replace(after, separated=True) if after is not None else None
        return self._position(significant, state, partial)

    def _position(self, before: list[_Lexeme], state: _State, partial: str) -> Names | None:
        if not before:
            return None
        prev = before[-1]
        if prev.text == "." and len(before) >= 2 and before[-2].kind in ("word", "quoted"):
            qualifier = before[-2].name.lower()
            table = self._tables.get(state.aliases.get(qualifier, qualifier))
            if table is not None:
                return self._names({c.name for c in table.columns}, partial, "sql.column")
            if qualifier in state.ctes or qualifier in state.aliases:
                return None  # a CTE or a subquery's alias: its columns are not in the schema
            return self._names(set(self._all_columns), partial, "sql.column")
        frame = state.query()
        if prev.upper in _TABLE_AFTER or (prev.text == "," and frame.in_from):
            return self._names({t.name for t in self.schema.tables} | state.ctes, partial, "sql.table")
        bare = prev.upper in _NAME_AFTER or (prev.kind == "punct" and prev.text in _NAME_AFTER_PUNCT)
        if not bare or not frame.seen_from or frame.in_from:
            return None
        allowed = {c.name for t in state.scope() if t in self._tables for c in self._tables[t].columns}
        if any(t not in self._tables for t in state.scope()):
            return None  # a CTE or subquery in scope: its columns are unknown
        allowed |= state.outputs | set(state.aliases) | {self._tables[t].name for t in state.scope()} | self._keywords
        return self._names(allowed, partial, "sql.name")

    def _names(self, allowed: set[str], partial: str, kind: str) -> Names | None:
        if not all(is_word(n) for n in allowed):
            return None
        return Names(frozenset(allowed), partial, kind, required=False, fold=True)


def _closed(lexeme: _Lexeme) -> bool:
    text = lexeme.text
    if lexeme.kind == "string":
        return len(text) > 1 and text.endswith("'") and (len(text) - len(text.rstrip("'"))) % 2 == 1
    return text.startswith("--") or text.endswith("*/")


def _walk(lexemes: list[_Lexeme]) -> _State:
    """Track scopes, aliases and clauses through the SQL written so far."""
    state = _State()
    significant = [x for x in lexemes if x.kind not in ("ws", "comment")]
    for i, lex in enumerate(significant):
        prev = significant[i - 1] if i else None
        frame = state.frames[-1]
        word = lex.upper
        if lex.text == "(":
            state.frames.append(_Frame())
        elif lex.text == ")" and len(state.frames) > 1:
            state.frames.pop()
        elif word == "SELECT":
            frame.query, frame.seen_from, frame.in_from = True, False, False
            frame.tables = []
        elif word in ("FROM", "JOIN"):
            frame.seen_from = frame.in_from = True
        elif word in _CLAUSES:
            frame.in_from = False
        elif word == "AS" and i + 1 < len(significant) and significant[i + 1].text == "(" and prev is not None:
            state.ctes.add(prev.name.lower())  # WITH name AS (
        elif lex.kind in ("word", "quoted") and word != "AS" and prev is not None:
            name = lex.name.lower()
            if prev.upper in _TABLE_AFTER or (prev.text == "," and frame.in_from):
                frame.tables.append(name)
            elif prev.upper == "AS" and i >= 2 and frame.in_from and significant[i - 2].kind in ("word", "quoted"):
                state.aliases[name] = significant[i - 2].name.lower()
            elif prev.upper == "AS":
                state.outputs.add(lex.name)
            elif (
                frame.in_from
                and prev.kind in ("word", "quoted")
                and prev.name.lower() in frame.tables[-1:]
                and word not in _CLAUSES | _JOINS
            ):
                state.aliases[name] = prev.name.lower()  # FROM Pets p
    return state
