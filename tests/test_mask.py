"""Identifier masks (engine/mask.py): which tokens may come next at a constrained step."""

from __future__ import annotations

import asyncio

from codespark.engine.backend import SamplingParams
from codespark.engine.engine import Engine, GenerationRequest
from codespark.engine.fake import FakeBackend
from codespark.engine.mask import Names, Vocabulary

PIECES = [b" Pets", b" Pet", b"Pets", b"Pet", b"Type", b"Type,", b"_type", b"_age", b",", b" ", b"(", b"1",
          b"M", b" FROM", b"", b"ts", b" pets", b"Student", b"\xe2"]  # fmt: skip
VOCAB = Vocabulary(PIECES)
NAMES = frozenset({"Pets", "PetType", "pet_age", "Student"})


def allowed(names: Names) -> set[bytes]:
    mask = VOCAB.allowed(names)
    return {PIECES[i] for i in range(len(PIECES)) if mask[i]}


def test_start_allows_prefixes_of_names_and_non_identifiers() -> None:
    got = allowed(Names(NAMES))
    assert {b" Pets", b" Pet", b"Pets", b"Pet", b"Student"} <= got
    assert {b",", b" ", b"(", b"1", b""} <= got  # not an identifier: the monitor constrains names only
    assert b" pets" not in got and b"Type" not in got and b"ts" not in got


def test_required_names_allow_only_names() -> None:
    got = allowed(Names(NAMES, required=True))
    assert b"Pets" in got and b"(" not in got and b" " not in got and b"" not in got


def test_continuation_spells_a_name_or_ends_on_one() -> None:
    got = allowed(Names(NAMES, partial="Pet"))
    assert b"Type" in got and b"Type," in got
    assert b"_type" not in got and b"," not in got and b"ts" not in got  # "Pet" alone is no name either
    assert b"ts" in allowed(Names(NAMES, partial="Pe"))
    assert allowed(Names(NAMES, partial="pet")) >= {b"_age"}


def test_a_whole_name_may_end() -> None:
    got = allowed(Names(NAMES, partial="PetType"))
    assert {b",", b" FROM", b" ", b""} <= got
    assert b"Type" not in got and b"M" not in got


def test_folded_names_ignore_case() -> None:
    got = allowed(Names(NAMES, fold=True))
    assert b" pets" in got
    assert b"_type" in allowed(Names(frozenset({"pet_type"}), partial="PET", fold=True))


def test_separated_leaves_the_current_word_free() -> None:
    got = allowed(Names(NAMES, separated=True))
    assert b"M" in got and b"Type" in got  # FRO + M: the keyword goes on, unconstrained
    assert b" pets" not in got  # a new identifier after whitespace is still constrained


def test_the_mask_never_blocks_everything() -> None:
    mask = VOCAB.allowed(Names(frozenset({"zzz"}), partial="q", required=True))
    assert mask.all()


class Columns:
    """A toy monitor: after "SELECT ", only real columns."""

    def names(self, text: str) -> Names | None:
        if not text.startswith("SELECT "):
            return None
        rest = text[len("SELECT ") :]
        if rest and not rest.isidentifier():
            return None
        return Names(frozenset({"PetType", "weight"}), rest, "toy", required=not rest)


def test_the_sampling_loop_masks_and_reports() -> None:
    backend = FakeBackend(default="SELECT pet_type FROM Pets")
    engine = Engine(backend)

    async def run() -> tuple[str, int, str]:
        request = GenerationRequest(["q"], SamplingParams(max_tokens=64, monitor=Columns()))
        result = await engine.run(request)
        return result.text, result.timings.masked_steps, result.timings.triggers

    text, masked, triggers = asyncio.run(run())
    engine.close()
    word = text[len("SELECT ") :].split()[0]
    assert text.startswith("SELECT ") and word in {"PetType", "weight"}, text
    assert masked >= len(word) and triggers == "toy=1"


def test_no_name_ends_in_a_letter_of_another_script_and_members_take_no_space() -> None:
    vocab = Vocabulary([b"Boolean", "\u0131".encode(), "Boolean\u0131".encode(), b" Boolean", b",", b"\xc4"])
    names = frozenset({"Boolean"})
    after = vocab.allowed(Names(names, partial="Boolean"))
    assert list(after) == [False, False, False, True, True, False]  # "ı" would make "Booleanı", no name
    start = vocab.allowed(Names(names, required=True))
    assert list(start) == [True, False, False, False, False, False]  # not " Boolean" after a dot


class Members:
    """A toy member monitor: after ``s.``, only ``upper`` and ``lower``."""

    def names(self, text: str) -> Names | None:
        code = "x = s." + text
        word = code[len("x = s.") :]
        if not code.startswith("x = s.") or (word and not word.isidentifier()):
            return None
        return Names(frozenset({"upper", "lower"}), word, "toy.member", required=True)


def test_a_member_prompt_holds_the_dot_back_and_the_monitor_reads_after_it() -> None:
    from codespark.engine.fim import FimRequest
    from codespark.services.fim import one_shot

    backend = FakeBackend(default=".upper()")
    engine = Engine(backend)

    async def run(monitor: Columns | Members | None) -> str:
        job = one_shot(engine, FimRequest("x = s.", "\n"), SamplingParams(max_tokens=16, monitor=monitor))
        return (await engine.run(job)).text

    guided = asyncio.run(run(Members()))
    plain = asyncio.run(run(None))
    engine.close()
    assert guided == "upper()"  # the model wrote ".upper()"; the held-back dot is not repeated
    assert backend.prompts[0].endswith("<|fim_middle|>x = s")  # the typed line follows the anchor's prompt
    assert backend.prompts[1].endswith("<|fim_middle|>x = s.")  # no monitor: no healing
    assert plain == ".upper()"


class AfterAnyDot:
    """A toy member monitor: after any dot, ``upper`` or ``lower``."""

    def names(self, text: str) -> Names | None:
        import re

        found = re.search(r"\.(\w*)\Z", text)
        return None if found is None else Names(frozenset({"upper", "lower"}), found.group(1), "toy", required=True)


def test_a_cached_answer_is_reused_only_if_its_names_hold() -> None:
    from codespark.engine.mask import holds

    assert holds(AfterAnyDot(), "s.upper().lower()")
    assert not holds(AfterAnyDot(), "s.upper().title()")  # typed-ahead would serve an invented member
    assert holds(AfterAnyDot(), "no members here")
