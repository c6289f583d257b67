"""Adoption: which SSM records, made before the connector (by hand or by another tool), are Sage's.

Before a dossier's first load, SSM may already hold its customers, contacts and products without
our link (no `extId` of the group's scheme). Each Sage record without a link is compared with
those SSM records through the rules of its entity, tried in order; the first rule that finds a
candidate decides:

| Entity  | Rule (code)     | Sage (canonical field)          | SSM                                              |
|---------|-----------------|---------------------------------|--------------------------------------------------|
| account | `siret`         | `siret` (14 digits)             | the tenant's `Z_*` field named like "siret"      |
| account | `vat`           | `vat_number`                    | `vatNumber`                                      |
| account | `siren`         | the first 9 digits of `siret`   | the SIREN inside a French `vatNumber` (FRkk + 9) |
| account | `name_postcode` | normalized `name` + `postcode`  | normalized `name` + `postcode`                   |
| contact | `email`         | `email`, within its account     | `email`, within the same SSM account             |
| product | `reference`     | the key (the article reference) | `model`, or the tenant's `Z_*` field named like "ref"/"sku" |

A candidate found by a weaker rule is dropped when both records carry an identifier of a
stronger rule and the identifiers differ (same name and postcode, another SIRET: another firm).
A match is *unique* when the Sage record has one candidate and no other Sage record claims it;
otherwise it is *ambiguous* (two candidates either side): listed for the administrator, never
guessed. Nothing here reads or writes anything: `shared.sync.adopter` binds, `shared.sync.preview`
counts.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Protocol

from shared.models import Entity
from shared.sync.binder import dossier_tag
from shared.sync.merge import reference_id

UNIQUE, AMBIGUOUS = "unique", "ambiguous"

LEGAL_FORMS = frozenset({"sa", "sas", "sasu", "sarl", "eurl", "snc", "sci", "scop", "selarl", "ets",
                         "etablissements", "ste", "societe", "cie"})
"""Words of a company name that say its legal form, not who it is (left out of name comparisons)."""

CUSTOM_SIRET = ("siret",)
CUSTOM_REFERENCE = ("ref", "sku")


class MatchContext(Protocol):
    """What the rules may ask: the tenant's custom fields, the SSM account of a Sage account."""

    def custom_field(self, resource: str, hints: tuple[str, ...]) -> Optional[str]: ...

    def account_id(self, account_key: str) -> Optional[int]: ...


# --- normal forms --------------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def digits(value: Any) -> Optional[str]:
    found = re.sub(r"\D", "", _text(value))
    return found or None


def siret(value: Any) -> Optional[str]:
    found = digits(value)
    return found if found and len(found) == 14 else None


def vat_number(value: Any) -> Optional[str]:
    found = re.sub(r"[^0-9A-Z]", "", _text(value).upper())
    return found if len(found) >= 4 else None


def siren_of_vat(value: Any) -> Optional[str]:
    """The SIREN a French VAT number carries (FR, two check characters, nine digits)."""
    found = vat_number(value)
    if found and len(found) == 13 and found.startswith("FR") and found[4:].isdigit():
        return found[4:]
    return None


def company_name(value: Any) -> Optional[str]:
    """A name without accents, case, punctuation or legal form: « Maison Dupré & Fils SARL » →
    « maison dupre et fils »."""
    plain = unicodedata.normalize("NFKD", _text(value).replace("&", " et ").replace("œ", "oe").replace("Œ", "OE"))
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    words = [w for w in re.split(r"[^0-9a-z]+", plain) if w and w not in LEGAL_FORMS]
    return " ".join(words) or None


def postcode(value: Any) -> Optional[str]:
    found = re.sub(r"\s", "", _text(value)).upper()
    return found or None


def email(value: Any) -> Optional[str]:
    found = _text(value).casefold()
    return found if "@" in found else None


def reference(value: Any) -> Optional[str]:
    found = re.sub(r"\s", "", _text(value)).casefold()
    return found or None


def _pair(*parts: Optional[Any]) -> Optional[str]:
    return None if any(p is None or p == "" for p in parts) else "|".join(str(p) for p in parts)


# --- the rules -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatchRule:
    """One way to recognise a Sage record in SSM: the key each side gives (None: no key)."""

    code: str
    sage: Callable[[dict, MatchContext], Optional[str]]
    ssm: Callable[[dict, MatchContext], Iterable[Optional[str]]]
    identifier: bool = False
    """A key naming one firm (SIRET, VAT): when both sides have one and they differ, a weaker
    rule's candidate is not the same record."""


def _custom(record: dict, ctx: MatchContext, resource: str, hints: tuple[str, ...]) -> Any:
    name = ctx.custom_field(resource, hints)
    return record.get(name) if name else None


def _contact_account(record: dict, ctx: MatchContext) -> Optional[int]:
    return ctx.account_id(record["account_key"]) if record.get("account_key") else None


RULES: dict[str, tuple[MatchRule, ...]] = {
    Entity.ACCOUNT.value: (
        MatchRule("siret", lambda r, c: siret(r.get("siret")),
                  lambda s, c: (siret(_custom(s, c, "accounts", CUSTOM_SIRET)),), identifier=True),
        MatchRule("vat", lambda r, c: vat_number(r.get("vat_number")),
                  lambda s, c: (vat_number(s.get("vatNumber")),), identifier=True),
        MatchRule("siren", lambda r, c: (siret(r.get("siret")) or "")[:9] or None,
                  lambda s, c: (siren_of_vat(s.get("vatNumber")),), identifier=True),
        MatchRule("name_postcode", lambda r, c: _pair(company_name(r.get("name")), postcode(r.get("postcode"))),
                  lambda s, c: (_pair(company_name(s.get("name")), postcode(s.get("postcode"))),)),
    ),
    Entity.CONTACT.value: (
        MatchRule("email", lambda r, c: _pair(_contact_account(r, c), email(r.get("email"))),
                  lambda s, c: (_pair(reference_id(s.get("accountId")), email(s.get("email"))),)),
    ),
    Entity.PRODUCT.value: (
        MatchRule("reference", lambda r, c: reference(r.get("key")),
                  lambda s, c: (reference(s.get("model")), reference(_custom(s, c, "products", CUSTOM_REFERENCE)))),
    ),
}
"""The rules of each entity, strongest first (see the module docstring)."""

RESOURCE_OF = {Entity.ACCOUNT.value: "accounts", Entity.CONTACT.value: "contacts", Entity.PRODUCT.value: "products"}
ADOPTABLE = tuple(RULES)
"""The entities whose SSM records may be adopted, in the order they are matched (a contact
needs its account's match)."""


# --- matching ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """A Sage record and the SSM records that may be it."""

    entity: str
    sage_key: str
    rule: str
    candidates: tuple[int, ...]
    contested_by: tuple[str, ...] = ()      # other Sage keys whose match is the same SSM record

    @property
    def status(self) -> str:
        return UNIQUE if len(self.candidates) == 1 and not self.contested_by else AMBIGUOUS

    @property
    def ssm_id(self) -> Optional[int]:
        """The SSM record to bind, for a unique match."""
        return self.candidates[0] if self.status == UNIQUE else None


def is_ours(ext_id: Any, dossiers: Iterable[str]) -> bool:
    """Whether an `extId` is of the connector's scheme for one of the group's dossiers."""
    if not isinstance(ext_id, str) or not ext_id:
        return False
    return any(ext_id.startswith(dossier_tag(d) + ":") or ext_id.startswith(d + ":") for d in dossiers)


def adoptable(ssm_records: Iterable[dict], *, linked_ids: set[int], dossiers: Iterable[str]) -> list[dict]:
    """The live SSM records no dossier of the group holds: not deleted, not linked, no `extId` of ours."""
    dossiers = tuple(dossiers)
    return [r for r in ssm_records if not r.get("deleted") and int(r["id"]) not in linked_ids
            and not is_ours(r.get("extId"), dossiers)]


@dataclass
class _Index:
    rule: MatchRule
    by_key: dict[str, list[int]] = field(default_factory=dict)


def _vetoed(sage_record: dict, ssm_record: dict, rule: MatchRule, rules: tuple[MatchRule, ...],
            ctx: MatchContext) -> bool:
    for stronger in rules:
        if stronger is rule:
            return False
        if not stronger.identifier:
            continue
        mine = stronger.sage(sage_record, ctx)
        theirs = {k for k in stronger.ssm(ssm_record, ctx) if k}
        if mine and theirs and mine not in theirs:
            return True
    return False


def match(entity: str, sage_records: Iterable[dict], ssm_records: Iterable[dict], ctx: MatchContext) -> list[Match]:
    """The matches of `sage_records` (canonical records, each with its `key`, none linked) among
    `ssm_records` (adoptable ones), in the order of `sage_records`; records with no candidate
    are left out."""
    rules = RULES[entity]
    ssm_by_id = {int(r["id"]): r for r in ssm_records}
    indexes = [_Index(rule) for rule in rules]
    for ssm_id, record in sorted(ssm_by_id.items()):
        for index in indexes:
            for key in {k for k in index.rule.ssm(record, ctx) if k}:
                index.by_key.setdefault(key, []).append(ssm_id)
    proposals: list[tuple[str, str, tuple[int, ...]]] = []
    for record in sage_records:
        for index in indexes:
            key = index.rule.sage(record, ctx)
            if not key:
                continue
            ids = tuple(i for i in index.by_key.get(key, ())
                        if not _vetoed(record, ssm_by_id[i], index.rule, rules, ctx))
            if ids:
                proposals.append((record["key"], index.rule.code, ids))
                break
    claims: dict[int, list[str]] = {}
    for sage_key, _, ids in proposals:
        for ssm_id in ids:
            claims.setdefault(ssm_id, []).append(sage_key)
    return [Match(entity, sage_key, rule, ids,
                  tuple(sorted({other for i in ids for other in claims[i] if other != sage_key})))
            for sage_key, rule, ids in proposals]
