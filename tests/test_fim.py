from codespark.engine.fim import ExtraFile, FimRequest, build_prompt, echo_target, fit
from codespark.engine.prompt import Special, render
from codespark.engine.text import Echo


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
