"""Key encoding: any Sage key becomes a legal, reversible, prefix-safe Table Storage key."""
from __future__ import annotations

import random

import pytest

from shared.keys import SEPARATOR, decode_key, encode_key, row_key, split_row_key
from shared.state.limits import check_key

FORBIDDEN = "/\\#?%~|" + "".join(map(chr, range(0x20))) + "".join(map(chr, range(0x7F, 0xA0)))
ALPHABET = FORBIDDEN + "azAZ09 -_.'\"&+=*@!éèçàœŒßÆ€£¥日本語中文😀🇫🇷𝄞" + "\u00a0\u200b\ufeff\uffff"


def generated_strings(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
def test_encoding_is_reversible_and_legal_for_generated_strings(seed):
    for raw in generated_strings(400, seed):
        encoded = encode_key(raw)
        assert decode_key(encoded) == raw
        check_key(encoded)
        assert SEPARATOR not in encoded


@pytest.mark.parametrize("seed", range(3))
def test_row_keys_split_back_into_their_parts(seed):
    strings = generated_strings(300, seed)
    for first, second, third in zip(strings, strings[1:], strings[2:]):
        key = row_key(first, second, third)
        check_key(key)
        assert split_row_key(key) == [first, second, third]


@pytest.mark.parametrize("seed", range(3))
def test_a_component_prefix_matches_only_that_component(seed):
    strings = generated_strings(300, seed)
    for a, b in zip(strings, strings[1:]):
        for tail in strings[:20]:
            assert row_key(a, tail).startswith(row_key(a) + SEPARATOR)
            assert row_key(b, tail).startswith(row_key(a) + SEPARATOR) == (a == b)


def test_ordinary_keys_stay_readable():
    assert encode_key("CLIENT001") == "CLIENT001"
    assert encode_key("Élodie Müller") == "Élodie Müller"
    assert encode_key("C/1#2?") == "C~2F1~232~3F"
    assert "%" not in encode_key("100% or")
    assert row_key("account", "BIJOU", "C 1") == "account|BIJOU|C 1"


@pytest.mark.parametrize("character", list(FORBIDDEN))
def test_every_forbidden_character_is_escaped(character):
    encoded = encode_key(f"a{character}b")
    escape = "".join(f"~{byte:02X}" for byte in character.encode("utf-8"))
    assert encoded == f"a{escape}b"
    assert decode_key(encoded) == f"a{character}b"


@pytest.mark.parametrize("bad", ["a/b", "a\\b", "a#b", "a?b", "a\x00b", "a\nb", "a\x7fb", "a\x9fb"])
def test_check_key_refuses_raw_illegal_characters(bad):
    with pytest.raises(ValueError):
        check_key(bad)


def test_keys_past_one_kib_are_refused():
    row_key("x" * 512)
    with pytest.raises(ValueError):
        row_key("x" * 513)
    with pytest.raises(ValueError):
        row_key("/" * 200)
    with pytest.raises(ValueError):
        check_key("x" * 513)
