from codespark.engine.text import Echo, TextAssembler


def feed(asm: TextAssembler, pieces: list[bytes]) -> str:
    out = "".join(asm.push(p) for p in pieces)
    return out + asm.finish()


def test_plain_text_passes_through() -> None:
    asm = TextAssembler()
    assert feed(asm, [b"hel", b"lo"]) == "hello"
    assert not asm.stopped


def test_utf8_split_across_tokens_is_held_until_complete() -> None:
    asm = TextAssembler()
    euro = "€".encode()
    assert asm.push(euro[:1]) == ""
    assert asm.push(euro[1:]) == "€"


def test_stop_string_cuts_and_stops() -> None:
    asm = TextAssembler(stops=["\n\n"])
    assert feed(asm, [b"a = 1\n", b"\nb = 2"]) == "a = 1"
    assert asm.stopped


def test_partial_stop_is_held_then_released() -> None:
    asm = TextAssembler(stops=["END"])
    assert asm.push(b"xE") == "x"
    assert asm.push(b"Nx") == "ENx"


def test_stop_split_over_many_tokens() -> None:
    asm = TextAssembler(stops=["###"])
    assert feed(asm, [b"ok#", b"#", b"# more"]) == "ok"


def test_suffix_echo_stops_before_the_echoed_line() -> None:
    # The suffix is "\n    return total": its leading newline is dropped with the echo.
    asm = TextAssembler(echo=Echo("return total", lead_newlines=1), at_line_start=True)
    text = feed(asm, [b"    total += x\n", b"    return", b" total\n", b"extra"])
    assert text == "    total += x"
    assert asm.stopped


def test_echo_keeps_the_newline_the_suffix_lacks() -> None:
    # The suffix starts on a fresh line ("    return total"): the middle must end with its newline.
    asm = TextAssembler(echo=Echo("return total", lead_newlines=0), at_line_start=True)
    assert feed(asm, [b"    total += x\n", b"    return total\n"]) == "    total += x\n"


def test_echo_line_is_not_cut_when_it_differs() -> None:
    asm = TextAssembler(echo=Echo("return total"), at_line_start=True)
    assert feed(asm, [b"    return total + 1\n"]) == "    return total + 1\n"


def test_first_line_is_not_an_echo_candidate_mid_line() -> None:
    # The cursor is mid-line: the first generated "line" is the rest of that line.
    asm = TextAssembler(echo=Echo("foo()"), at_line_start=False)
    assert feed(asm, [b"foo()"]) == "foo()"
