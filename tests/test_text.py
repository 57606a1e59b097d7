from codespark.engine.text import TextAssembler


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


def test_heal_drops_the_held_back_spaces_the_model_rewrites() -> None:
    asm = TextAssembler(heal="    ")
    assert feed(asm, [b"  ", b"  result = 1"]) == "result = 1"


def test_heal_keeps_what_differs() -> None:
    assert feed(TextAssembler(heal="    "), [b"  x"]) == "x"
    assert feed(TextAssembler(heal=" "), [b"1"]) == "1"
