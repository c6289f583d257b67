"""The French message catalogue: every code the code uses exists, every template renders."""
from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from shared.messages import CATALOGUE, Message, text

ROOT = Path(__file__).resolve().parents[2]
LITERAL_CODE = re.compile(r"""(?:Message\.of|\btext)\(\s*["']([a-z0-9_.]+)["']""")
FORMATTED_CODE = re.compile(r"""(?:Message\.of|\btext)\(\s*f["']([a-z0-9_.]+)\{""")


def sources() -> list[Path]:
    return [p for folder in ("shared", "local", "functions") for p in (ROOT / folder).rglob("*.py")]


def test_every_code_written_in_the_code_is_in_the_catalogue():
    used = {code for path in sources() for code in LITERAL_CODE.findall(path.read_text(encoding="utf-8"))}
    prefixes = {p for path in sources() for p in FORMATTED_CODE.findall(path.read_text(encoding="utf-8"))}
    assert used, "no message code found: the pattern no longer matches the code"
    assert sorted(used - set(CATALOGUE)) == []
    assert [p for p in sorted(prefixes) if not any(code.startswith(p) for code in CATALOGUE)] == []


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_template_renders_with_its_fields(code):
    fields = {name for _, name, _, _ in string.Formatter().parse(CATALOGUE[code]) if name}
    rendered = text(code, **{name: f"<{name}>" for name in fields})
    assert "{" not in rendered and all(f"<{name}>" in rendered for name in fields)


def test_a_message_keeps_its_code_text_and_values():
    message = Message.of("tenant.account_type.created", label="Prospect", id=57)
    assert (message.code, message.values) == ("tenant.account_type.created", {"label": "Prospect", "id": 57})
    assert message.text == text("tenant.account_type.created", label="Prospect", id=57) == str(message)
    assert "« Prospect »" in message.text and "57" in message.text


def test_an_unknown_code_or_a_missing_field_is_an_error():
    with pytest.raises(KeyError):
        text("tenant.no.such.code")
    with pytest.raises(KeyError):
        text("tenant.account_type.created", label="Prospect")


def test_a_stored_sentence_gives_its_code_back():
    from shared.messages import code_of

    nested = text("inbound.refused", what=text("inbound.what.contact"), key="7",
                  reason=text("sage.refused.email", value="x@"))
    assert code_of(nested) == "inbound.refused"
    assert code_of(text("sync.outage", cause="SSM n'a pas répondu après 4 tentatives (HTTP 503)")) == "sync.outage"
    assert code_of("The account 'C001' could not be sent to Sales Management.") is None
    assert code_of("") is None and code_of(None) is None
