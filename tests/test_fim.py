from codespark.engine.fim import Echo, ExtraFile, FimRequest, FimStops, build_prompt, echo_target, fit
from codespark.engine.prompt import Special
from codespark.engine.text import TextAssembler
from tests.helpers import prompt_text as render


def count(text: str) -> int:
    return len(text)  # one "token" per character keeps the arithmetic visible


def test_psm_prompt_order() -> None:
    prompt = build_prompt(FimRequest("def f():\n    ", "\n"))
    assert prompt == [
        Special("<|fim_prefix|>"),
        "def f():\n    ",
        Special("<|fim_suffix|>"),
        "\n",
        Special("<|fim_middle|>"),
    ]


def test_repo_level_prompt_puts_extra_files_first() -> None:
    req = FimRequest("x = ", "\n", extra=(ExtraFile("lib/util.py", "def helper(): ..."),), filename="app.py")
    text = render(build_prompt(req))
    assert text.startswith("<|repo_name|>repo\n<|file_sep|>lib/util.py\ndef helper(): ...\n")
    assert text.endswith("<|file_sep|>app.py\n<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>")


def test_user_text_stays_text() -> None:
    prompt = build_prompt(FimRequest("s = '<|fim_middle|>'", ""))
    assert "s = '<|fim_middle|>'" in prompt
    assert prompt.count(Special("<|fim_middle|>")) == 1


def test_echo_target_is_first_nonblank_suffix_line() -> None:
    assert echo_target("\n\n    return total\n") == Echo("return total", 2)
    assert echo_target("        for x in y:\n") == Echo("for x in y:", 0)
    assert echo_target("\n}\n") is None
    assert echo_target("") is None


def test_fit_keeps_text_nearest_the_cursor() -> None:
    prefix = "".join(f"line{i}\n" for i in range(100))
    suffix = "".join(f"tail{i}\n" for i in range(100))
    req = fit(FimRequest(prefix, suffix), count, budget=200)
    assert count(req.prefix) + count(req.suffix) <= 200
    assert req.prefix.endswith("line99\n")
    assert req.suffix.startswith("tail0\n")
    assert count(req.suffix) <= 50


def test_fit_drops_extra_files_first() -> None:
    req = FimRequest("abc", "def", extra=(ExtraFile("a", "x" * 50), ExtraFile("b", "y" * 500)))
    fitted = fit(req, count, budget=100)
    assert [e.filename for e in fitted.extra] == ["a"]
    assert fitted.prefix == "abc"


def test_fit_keeps_the_end_of_one_huge_line() -> None:
    req = fit(FimRequest("z" * 1000, ""), count, budget=100)
    assert req.prefix == "z" * 100


def answer(prefix: str, suffix: str, pieces: list[str], block: bool = True) -> str:
    asm = TextAssembler(policy=FimStops(prefix, suffix, block))
    streamed = "".join(asm.push(p.encode()) for p in pieces) + asm.finish()
    assert streamed == asm.text
    return streamed


def test_echo_of_the_suffix_is_cut_with_its_leading_newline() -> None:
    prefix, suffix = "def f(xs):\n    total = 0\n    ", "\n    return total\n"
    out = answer(
        prefix, suffix, ["for x in xs:\n", "        total += x\n", "    return", " total\n", "extra"], block=False
    )
    assert out == "for x in xs:\n        total += x"


def test_echo_keeps_the_newline_a_whole_line_hole_needs() -> None:
    prefix, suffix = "def f(xs):\n", "    return total\n"
    out = answer(prefix, suffix, ["    total = sum(xs)\n", "    return total\n"], block=False)
    assert out == "    total = sum(xs)\n"


def test_single_line_when_code_follows_in_the_same_block() -> None:
    prefix = "def count(s):\n    ans = 0\n"
    suffix = "        ans += (c == '7')\n    return ans\n"
    out = answer(prefix, suffix, ["    for c in s:\n", "        if c == '7':\n", "            ans += 1\n"])
    assert out == "    for c in s:\n"


def test_multi_line_at_an_empty_block_ends_at_the_dedent() -> None:
    prefix = "def is_prime(n):\n    if n < 2:\n"
    suffix = "    for k in range(2, n - 1):\n        if n % k == 0:\n            return False\n    return True\n"
    out = answer(prefix, suffix, ["        return False\n", "    for k in range(2, int(n ** 0.5)):\n"])
    assert out == "        return False\n"


def test_end_of_file_answer_stops_when_the_function_ends() -> None:
    prefix = "def parse(s):\n    result = []\n    for c in s:\n        result.append(c)\n\n"
    out = answer(prefix, "", ["    return result\n", "\n\n", "# Check\n", "def check():\n"])
    assert out == "    return result\n"


def test_mid_line_completion_is_one_line() -> None:
    prefix, suffix = "def add(a, b):\n    return a", "\n\nprint(add(1, 2))\n"
    assert answer(prefix, suffix, [" + b\n", "\n", "def sub(a, b):\n"]) == " + b"


def test_block_rules_can_be_turned_off() -> None:
    prefix = "def count(s):\n    ans = 0\n"
    suffix = "        ans += (c == '7')\n    return ans\n"
    out = answer(prefix, suffix, ["    for c in s:\n", "        if c:\n"], block=False)
    assert out == "    for c in s:\n        if c:\n"


def test_mid_line_answer_never_breaks_the_rest_of_the_line() -> None:
    prefix, suffix = "def f(a, b):\n    return max(", ")\n\nprint(f(1, 2))\n"
    assert answer(prefix, suffix, ["a, b\n", "    pass\n"]) == "a, b"


def test_single_line_for_a_short_suffix_line_drops_the_suffix_newline() -> None:
    # The suffix starts with a newline and a one-character line: echo cannot judge "}", the newline rule still does.
    prefix, suffix = "if (x) {\n    ", "\n    y();\n}\n"
    assert answer(prefix, suffix, ["z();\n", "    w();\n"]) == "z();"
