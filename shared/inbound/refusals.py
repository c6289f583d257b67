"""Sage's refusals of SSM's records, in French: the agent names each reason by a code and its
values (`agent.sage100.writer.CommandRefused`), the catalogue words it (`sage.refused.<code>`)."""
from __future__ import annotations

from shared.messages import CATALOGUE, text


def refusal_text(result: dict) -> str:
    """The reason of a refused command's result, as a Sage administrator reads it."""
    code = result.get("code")
    values = {"field": result.get("field"), **(result.get("values") or {})}
    if code and f"sage.refused.{code}" in CATALOGUE:
        try:
            return text(f"sage.refused.{code}", **values)
        except KeyError:
            pass
    return text("sage.refused.other", reason=result.get("error") or "?")
