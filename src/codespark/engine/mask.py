"""Identifier masks: at a trigger point, only tokens that spell a real name may come next.

A *monitor* (``Monitor``) reads the text generated so far and says, at points where it knows
(after ``FROM``, after ``alias.``), which identifiers may be written (``Names``).  The sampling
loop then asks the ``Vocabulary`` which token ids are consistent with those names and masks
the rest out of the logits before the sampler runs, so greedy decoding picks the model's most
likely *real* name instead of an invented one (monitor-guided decoding, Agrawal et al., 2023).

A token is allowed at a constrained step when, appended to the identifier written so far, it

- stays inside the identifier and spells the start of a name (``Pet`` + ``Ty`` toward ``PetType``);
- or ends the identifier on a whole name (``PetType`` + ``,``);
- or, when nothing of the identifier is written yet and the names are optional, does not begin an
  identifier at all (whitespace, ``(``, ``*``, a number, a stop token): the monitor constrains
  names, never the rest of the grammar, so the mask has no dead ends.

Names the index cannot represent (with spaces or other non-word characters) make the monitor
stay silent instead (see the monitors).  The index is built once per model (one pass over the
vocabulary); each trigger's names give a sorted prefix set, so one step is a range lookup.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from codespark.engine.backend import GenerationStats

_START = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")  # optional whitespace, then the start of an identifier
_CONTINUE = re.compile(r"[A-Za-z0-9_]*")
_WORDISH = re.compile(r"\w")  # a Unicode word character: a token starting with one continues an identifier
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Mask = npt.NDArray[np.bool_]


def is_word(name: str) -> bool:
    """Whether ``name`` is a plain identifier, the only kind a mask can constrain."""
    return _WORD.match(name) is not None


@dataclass(frozen=True)
class Names:
    """The identifiers that may be written at one point, and what of the current one is written.

    ``required``: a name must come (after ``obj.``); otherwise a token that starts no identifier is
    allowed too.  ``fold``: names compare case-insensitively (SQL).  ``separated``: the text ends in a
    word that may still go on (``FROM``, ``OR`` of ``ORDER``), so a token that continues it is free and
    only a new identifier, after whitespace, is constrained.  ``kind`` names the trigger for the
    timings and metrics.
    """

    names: frozenset[str]
    partial: str = ""
    kind: str = ""
    required: bool = False
    fold: bool = False
    separated: bool = False


class Monitor(Protocol):
    """Reads the text generated so far; says which names may come next, or None (no constraint)."""

    def names(self, text: str) -> Names | None: ...


@dataclass
class _Index:
    """Token ids by the identifier they start (after optional whitespace) or continue."""

    starts_open: dict[str, list[int]] = field(default_factory=dict)  # the token ends inside the identifier
    starts_closed: dict[str, list[int]] = field(default_factory=dict)  # the identifier ends inside the token
    continues_open: dict[str, list[int]] = field(default_factory=dict)
    continues_closed: dict[str, list[int]] = field(default_factory=dict)


class _Prefixes:
    """A trigger's names as a sorted list of all their prefixes (``fold``: lower-cased)."""

    def __init__(self, names: frozenset[str], fold: bool) -> None:
        self.names = frozenset(n.lower() for n in names) if fold else names
        self.sorted = sorted({n[:k] for n in self.names for k in range(1, len(n) + 1)})

    def extending(self, partial: str) -> list[str]:
        """Every prefix that starts with ``partial`` and is longer."""
        out: list[str] = []
        i = bisect.bisect_right(self.sorted, partial)
        while i < len(self.sorted) and self.sorted[i].startswith(partial):
            out.append(self.sorted[i])
            i += 1
        return out


class Vocabulary:
    """A model's tokens, indexed for identifier masks.  Built once per backend."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.size = len(pieces)
        self._exact = _Index()
        self._folded = _Index()
        starts_word = np.zeros(self.size, dtype=np.bool_)  # begins an identifier (maybe after whitespace)
        continues_word = np.zeros(self.size, dtype=np.bool_)  # its first character is a word character
        self._spaced = np.zeros(self.size, dtype=np.bool_)  # starts with whitespace
        for token, piece in enumerate(pieces):
            text = piece.decode("utf-8", errors="replace")
            if not text:
                continue  # control tokens: they end an identifier (a stop token may follow a whole name)
            self._spaced[token] = text[0].isspace()
            if "\ufffd" in text or _WORDISH.match(text):
                continues_word[token] = True  # partial UTF-8 or a non-ASCII letter: cannot end a name
            if "\ufffd" in text:
                continue
            start = _START.match(text)
            if start is not None:
                starts_word[token] = True
                if not _WORDISH.match(text, start.end()):
                    self._add(token, start.group(1), start.end() == len(text), starts=True)
            word = _CONTINUE.match(text)
            if word is not None and word.end() > 0:
                continues_word[token] = True
                if not _WORDISH.match(text, word.end()):  # "Type" or "Type(", not "Typeı"
                    self._add(token, word.group(0), word.end() == len(text), starts=False)
        # Every token by its bytes, sorted: the tokens that spell held-back text (``spelling``).
        self._by_bytes = sorted((piece, token) for token, piece in enumerate(pieces) if piece)
        self._piece_keys = [piece for piece, _ in self._by_bytes]
        self._starts_nothing = ~starts_word  # whitespace, punctuation, numbers, stop tokens
        self._ends_word = ~continues_word  # what may follow a whole identifier
        self._cache: dict[Names, Mask] = {}
        self._prefixes: dict[tuple[frozenset[str], bool], _Prefixes] = {}

    def _add(self, token: int, word: str, open_: bool, *, starts: bool) -> None:
        for index, key in ((self._exact, word), (self._folded, word.lower())):
            if starts:
                table = index.starts_open if open_ else index.starts_closed
            else:
                table = index.continues_open if open_ else index.continues_closed
            table.setdefault(key, []).append(token)

    def spelling(self, rest: bytes) -> Mask:
        """The tokens that begin with ``rest`` or spell a start of it: what may come while text the prompt held
        back (token healing) is written again.  Never all False."""
        mask = np.zeros(self.size, dtype=np.bool_)
        at = bisect.bisect_left(self._piece_keys, rest)
        while at < len(self._piece_keys) and self._piece_keys[at].startswith(rest):
            mask[self._by_bytes[at][1]] = True
            at += 1
        for k in range(1, len(rest)):
            at = bisect.bisect_left(self._piece_keys, rest[:k])
            while at < len(self._piece_keys) and self._piece_keys[at] == rest[:k]:
                mask[self._by_bytes[at][1]] = True
                at += 1
        if not mask.any():
            mask[:] = True
        return mask

    def allowed(self, names: Names) -> Mask:
        """A boolean mask over the vocabulary of the tokens that may come next.  Never all False."""
        if names not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[names] = self._compute(names)
        return self._cache[names]

    def _compute(self, names: Names) -> Mask:
        shape = (names.names, names.fold)
        if shape not in self._prefixes:
            if len(self._prefixes) > 64:
                self._prefixes.clear()
            self._prefixes[shape] = _Prefixes(*shape)
        prefixes = self._prefixes[shape]
        index = self._folded if names.fold else self._exact
        partial = names.partial.lower() if names.fold else names.partial
        mask = np.zeros(self.size, dtype=np.bool_)
        opened, closed = (index.starts_open, index.starts_closed) if not partial else (
            index.continues_open, index.continues_closed)  # fmt: skip
        for prefix in prefixes.extending(partial):
            rest = prefix[len(partial) :]
            mask[opened.get(rest, [])] = True
            if prefix in prefixes.names:
                mask[closed.get(rest, [])] = True
        if names.required and not partial:
            mask &= ~self._spaced  # ``obj.`` then `` attr``: legal, but not what anyone writes
        if not partial and not names.required:
            mask |= self._starts_nothing
        if names.separated:
            mask |= ~self._ends_word
        if partial and partial in prefixes.names:
            mask |= self._ends_word
        if not mask.any():  # nothing spells a name from here: leave the step free rather than stall
            mask[:] = True
        return mask


class Silent:
    """A monitor that never constrains (a guide that only heals)."""

    def names(self, text: str) -> Names | None:
        return None


class AfterHeal:
    """A monitor for a prompt that held ``heal`` back from its end (token healing): the model writes it
    first, so the monitor sees the generated text from after it, and nothing until it is written."""

    def __init__(self, inner: Monitor, heal: str) -> None:
        self.inner = inner
        self.heal = heal

    def names(self, text: str) -> Names | None:
        if not text.startswith(self.heal):
            return None
        return self.inner.names(text[len(self.heal) :])


@dataclass
class Guide:
    """Runs one monitor over one generation: feed it every token, ask it for the next step's mask."""

    monitor: Monitor
    vocabulary: Vocabulary
    pieces: bytearray = field(default_factory=bytearray)
    masked_steps: int = 0
    triggers: dict[str, int] = field(default_factory=dict)
    rejected: int = 0  # sampled tokens refused by ``accepts``
    _last: Names | None = None
    trail: list[tuple[str, Names]] = field(default_factory=list)  # (text so far, names) at each new trigger
    heal: bytes = b""  # held back from the prompt's end: spelled first, before the monitor has a say

    def mask(self) -> Mask | None:
        """The mask for the next token, or None where the monitor is silent."""
        if len(self.pieces) < len(self.heal) and self.heal.startswith(self.pieces):
            return self.vocabulary.spelling(self.heal[len(self.pieces) :])
        text = self.pieces.decode("utf-8", errors="ignore")
        names = self.monitor.names(text)
        if names is None:
            self._last = None
            return None
        last = self._last
        if last is None or names.names != last.names or (not names.partial and last.partial):
            self.triggers[names.kind] = self.triggers.get(names.kind, 0) + 1
            if len(self.trail) < 64:
                self.trail.append((text, names))
        self._last = names
        self.masked_steps += 1
        return self.vocabulary.allowed(names)

    def push(self, piece: bytes) -> None:
        self.pieces += piece

    def accepts(self, piece: bytes) -> bool:
        """Whether a sampled token is consistent with the monitor *inside* it as well.

        A mask only sees the step it is applied at, but one token can carry a trigger and the name
        after it (``.Age``, ``.post_entry``): after each ``.`` in the token, the rest of the token must
        spell the start of an allowed name there, or a whole one.  A rejected token is masked and the
        step sampled again.
        """
        if b"." not in piece:
            return True
        text = self.pieces.decode("utf-8", errors="ignore")
        if _breaks(self.monitor, text, piece.decode("utf-8", errors="ignore")):
            self.rejected += 1
            return False
        return True

    def report(self, stats: GenerationStats) -> None:
        stats.masked_steps, stats.triggers, stats.monitor_trail = self.masked_steps, self.triggers, self.trail


def _breaks(monitor: Monitor, before: str, piece: str) -> bool:
    """Whether ``piece``, written after ``before``, names something the monitor does not allow after a dot."""
    for k in range(1, len(piece)):
        if piece[k - 1] != ".":
            continue
        names = monitor.names(before + piece[:k])
        word = _CONTINUE.match(piece, k)
        if names is None or word is None or not word.group(0):
            continue
        wanted = word.group(0).lower() if names.fold else word.group(0)
        pool = {n.lower() for n in names.names} if names.fold else names.names
        whole = word.end() < len(piece)
        if (whole and wanted not in pool) or (not whole and not any(n.startswith(wanted) for n in pool)):
            return True
    return False


def holds(monitor: Monitor, text: str) -> bool:
    """Whether a whole piece of text (a cached answer about to be reused) keeps to the monitor's names."""
    return not _breaks(monitor, "", text)


def apply(logits: npt.NDArray[np.float32], mask: Mask) -> None:
    """Mask ``logits`` in place (the sampler then only sees allowed tokens)."""
    logits[~mask[: len(logits)]] = -np.inf
