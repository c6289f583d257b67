"""The tenant check: does this SSM tenant hold what the connector needs, for the group and each dossier?

`check_tenant(client, settings)` logs in, reads the users, branches, account types, sales-order
statuses, currencies, countries, the custom fields of products, accounts and sales orders and the
schema of account addresses (can this dossier's delivery addresses be synced here?), and
returns a `TenantReport`: findings each with a stable code, a severity (bloquant, avertissement,
info), a French sentence from `shared.messages` and the dossier it is about (None: the group).
`fix(client, report)` creates what the API allows (missing account types) and nothing else, then
checks again; sales-order statuses cannot be created through the API, so their findings name the
exact label to create by hand in SSM's administration. Every call goes through `SsmClient`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable, Iterable, Optional

from shared.config import ACCOUNT_ADDRESSES, DossierSettings, Settings
from shared.errors import SsmAuthError, SsmError
from shared.messages import Message, text
from shared.inbound.quote_statuses import QUOTE_STATUSES
from shared.ssm import contract
from shared.ssm.lookups import normalise
from shared.state.records import utcnow

USERS, BRANCHES, ACCOUNT_TYPES = "users", "branches", "accountTypes"
STATUSES, CURRENCIES, COUNTRIES = "salesorderStatuses", "currencies", "countries"
LISTS_READ = (USERS, BRANCHES, ACCOUNT_TYPES, STATUSES, CURRENCIES, COUNTRIES)

ACCOUNT_TYPE_LABELS = ("Client", "Prospect")
DOCUMENT_STATUS_LABELS = ("Commande", "Facture")
QUOTE_STATUS_LABELS: dict[str, tuple[str, ...]] = {product: statuses.labels
                                                   for product, statuses in QUOTE_STATUSES.items()}
CUSTOM_FIELD_RESOURCES = ("products", "accounts", "salesorders")
EURO_ISO_CODE = "EUR"
FRANCE_ISO2 = "FR"
RATE_TOLERANCE = 0.01
"""A configured rate within 1 % of a documented plan is that plan."""

DESCRIPTION_FIELDS = ("descriptionFR", "descriptionEN",
                      *(f"description{x}" for x in contract.LANGUAGE_SUFFIXES if x not in ("FR", "EN")))
"""The labels of a value-list entry, French first (the API returns no plain `description`)."""


class Severity(str, Enum):
    BLOCKING = "bloquant"
    WARNING = "avertissement"
    INFO = "info"


@dataclass(frozen=True)
class Repair:
    """What `fix` may create through the API to settle a finding."""

    resource: str
    body: dict
    label: str


@dataclass(frozen=True)
class Finding:
    """One thing the check found, about the group (`dossier` None) or one dossier."""

    message: Message
    severity: Severity
    dossier: Optional[str] = None
    repair: Optional[Repair] = None

    @property
    def code(self) -> str:
        return self.message.code

    @property
    def text(self) -> str:
        return self.message.text

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity.value, "dossier": self.dossier,
                "text": self.text, "values": dict(self.message.values)}


@dataclass(frozen=True)
class TenantReport:
    """The findings of one check, and what `fix` did before it (`actions`)."""

    group: str
    checked_at: dt.datetime
    findings: tuple[Finding, ...]
    dossiers: tuple[str, ...]
    actions: tuple[Message, ...] = ()
    settings: Optional[Settings] = field(default=None, repr=False, compare=False)

    @property
    def blocking(self) -> bool:
        """Something stops the sync (or user creation) until it is settled."""
        return any(f.severity is Severity.BLOCKING for f in self.findings)

    def codes(self, severity: Optional[Severity] = None) -> list[str]:
        return [f.code for f in self.findings if severity is None or f.severity is severity]

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def about(self, dossier: Optional[str]) -> list[Finding]:
        """The findings about one dossier, or about the group with None."""
        return [f for f in self.findings if f.dossier == dossier]

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "checked_at": self.checked_at.isoformat(), "blocking": self.blocking,
                "counts": {s.value: self.count(s) for s in Severity}, "dossiers": list(self.dossiers),
                "findings": [f.to_dict() for f in self.findings],
                "actions": [a.to_dict() for a in self.actions]}


# --- value lists ---------------------------------------------------------------------------------
def live(entries: Iterable[dict]) -> list[dict]:
    """The entries not deleted (SSM lists keep deleted records)."""
    return [e for e in entries if isinstance(e, dict) and not e.get("deleted")]


def labels_of(entry: dict) -> list[str]:
    return [entry[f] for f in DESCRIPTION_FIELDS if isinstance(entry.get(f), str) and entry[f].strip()]


def find_label(entries: Iterable[dict], label: str) -> Optional[dict]:
    """The first entry one of whose descriptions is `label` (case, spaces and dashes aside)."""
    wanted = normalise(label)
    return next((e for e in entries if any(normalise(x) == wanted for x in labels_of(e))), None)


def find_code(entries: Iterable[dict], name: str, code: str) -> Optional[dict]:
    """The first entry whose field `name` (an ISO code) is `code`, case aside."""
    return next((e for e in entries if str(e.get(name) or "").strip().upper() == code.upper()), None)


def users_by_email(users: Iterable[dict]) -> dict[str, dict]:
    """Live users by casefolded e-mail (the oldest when an e-mail is used twice)."""
    found: dict[str, dict] = {}
    for user in sorted(live(users), key=lambda u: u.get("id") or 0):
        email = str(user.get("email") or "").strip().casefold()
        if email:
            found.setdefault(email, user)
    return found


@dataclass(frozen=True)
class BranchChoice:
    """The SSM branch of a dossier: `ssm_branch`, else `[ssm] branch`, else the first live one
    (the lowest id, as the sync picks it)."""

    entry: Optional[dict]
    label: Optional[str]
    how: str            # "dossier", "group" or "first"

    @property
    def id(self) -> Optional[int]:
        return None if self.entry is None else int(self.entry["id"])

    def message(self) -> Message:
        """Which branch it is and why, or why there is none."""
        if self.entry is not None:
            name = (labels_of(self.entry) or [str(self.entry["id"])])[0]
            return Message.of("tenant.branch.chosen", branch=name, id=self.id,
                              how=text(f"tenant.branch.how.{self.how}"))
        if self.label is None:
            return Message.of("tenant.branch.none")
        setting = "ssm_branch du dossier" if self.how == "dossier" else "[ssm] branch"
        return Message.of("tenant.branch.missing", branch=self.label, setting=setting)


def choose_branch(branches: Iterable[dict], dossier_branch: Optional[str],
                  group_branch: Optional[str]) -> BranchChoice:
    entries = live(branches)
    if dossier_branch:
        return BranchChoice(find_label(entries, dossier_branch), dossier_branch, "dossier")
    if group_branch:
        return BranchChoice(find_label(entries, group_branch), group_branch, "group")
    return BranchChoice(min(entries, key=lambda e: e["id"], default=None), None, "first")


def matching_plan(rate_per_s: float) -> Optional[str]:
    """The documented plan (`contract.RATE_PLANS`) this rate is, or None."""
    for name, plan in contract.RATE_PLANS.items():
        if abs(rate_per_s - plan) <= plan * RATE_TOLERANCE:
            return name
    return None


# --- reading the tenant --------------------------------------------------------------------------
@dataclass
class _Tenant:
    """What was read; a list that could not be read is None (its failure is a finding already)."""

    lists: dict[str, Optional[list[dict]]]
    custom_fields: dict[str, list[str] | Message]
    address_schema: Optional[dict | Message] = None

    def __getitem__(self, resource: str) -> Optional[list[dict]]:
        return self.lists.get(resource)


def _read(client, resource: str, findings: list[Finding]) -> Optional[list[dict]]:
    try:
        return live(client.list(resource))
    except SsmAuthError:
        raise
    except SsmError as exc:
        findings.append(Finding(Message.of("tenant.read.failed", resource=resource, reason=exc.user_message),
                                Severity.BLOCKING))
        return None


def _custom_fields(client, resource: str) -> list[str] | Message:
    try:
        return sorted(client.custom_fields(resource))
    except SsmAuthError:
        raise
    except SsmError as exc:
        return Message.of("tenant.custom_fields.unreadable", what=text(f"ssm.resource.{resource}"),
                          reason=exc.user_message)


# --- the checks ----------------------------------------------------------------------------------
GroupCheck = Callable[[_Tenant, Settings], Iterable[Finding]]
DossierCheck = Callable[[_Tenant, Settings, DossierSettings], Iterable[Finding]]


def _admin_user(tenant: _Tenant, settings: Settings) -> Iterable[Finding]:
    email = (settings.ssm.admin_user_email or "").strip()
    if not email:
        yield Finding(Message.of("tenant.admin.not_configured"), Severity.BLOCKING)
        return
    if tenant[USERS] is None:
        return
    user = users_by_email(tenant[USERS]).get(email.casefold())
    if user is None:
        yield Finding(Message.of("tenant.admin.missing", email=email), Severity.BLOCKING)
    elif user.get("isActive") is False:
        yield Finding(Message.of("tenant.admin.inactive", email=email), Severity.BLOCKING)
    else:
        name = " ".join(str(user.get(k)) for k in ("name", "lastName") if user.get(k))
        yield Finding(Message.of("tenant.admin.found", name=name or email, email=email, id=int(user["id"])),
                      Severity.INFO)


def _account_types(tenant: _Tenant, settings: Settings) -> Iterable[Finding]:
    if tenant[ACCOUNT_TYPES] is None:
        return
    for label in ACCOUNT_TYPE_LABELS:
        if find_label(tenant[ACCOUNT_TYPES], label) is None:
            yield Finding(Message.of("tenant.account_type.missing", label=label), Severity.BLOCKING,
                          repair=Repair(ACCOUNT_TYPES, {"descriptionFR": label, "descriptionEN": label}, label))


def _document_statuses(tenant: _Tenant, settings: Settings) -> Iterable[Finding]:
    if tenant[STATUSES] is None:
        return
    for label in DOCUMENT_STATUS_LABELS:
        if find_label(tenant[STATUSES], label) is None:
            yield Finding(Message.of("tenant.status.missing", label=label), Severity.BLOCKING)


def _currency(tenant: _Tenant, settings: Settings) -> Iterable[Finding]:
    if tenant[CURRENCIES] is not None and find_code(tenant[CURRENCIES], "isoCode", EURO_ISO_CODE) is None:
        yield Finding(Message.of("tenant.currency.missing"), Severity.WARNING)


def _country(tenant: _Tenant, settings: Settings) -> Iterable[Finding]:
    if tenant[COUNTRIES] is not None and find_code(tenant[COUNTRIES], "iso2", FRANCE_ISO2) is None:
        yield Finding(Message.of("tenant.country.missing"), Severity.WARNING)


def _rate(tenant: _Tenant, settings: Settings) -> Iterable[Finding]:
    value = settings.ssm.rate_limit_per_s
    plan = matching_plan(value)
    if plan is None:
        yield Finding(Message.of("tenant.rate.unknown", value=f"{value:g}"), Severity.WARNING)
    else:
        yield Finding(Message.of("tenant.rate.plan", plan=text(f"ssm.plan.{plan}"), value=f"{value:g}"),
                      Severity.INFO)


def _language(tenant: _Tenant, settings: Settings) -> Iterable[Finding]:
    value = settings.ssm.user_language
    if value not in contract.USER_LANGUAGES:
        yield Finding(Message.of("tenant.language.invalid", value=value,
                                 choices=", ".join(contract.USER_LANGUAGES)), Severity.BLOCKING)


def _custom(tenant: _Tenant, settings: Settings) -> Iterable[Finding]:
    for resource, found in tenant.custom_fields.items():
        what = text(f"ssm.resource.{resource}")
        if isinstance(found, Message):
            yield Finding(found, Severity.WARNING)
        elif found:
            yield Finding(Message.of("tenant.custom_fields", what=what, names=", ".join(found)), Severity.INFO)
        else:
            yield Finding(Message.of("tenant.custom_fields.none", what=what), Severity.INFO)


def _branch(tenant: _Tenant, settings: Settings, dossier: Optional[DossierSettings]) -> Iterable[Finding]:
    if tenant[BRANCHES] is None:
        return
    choice = choose_branch(tenant[BRANCHES], dossier.ssm_branch if dossier else None, settings.ssm.branch)
    yield Finding(choice.message(), Severity.INFO if choice.entry is not None else Severity.BLOCKING)


def _quote_statuses(tenant: _Tenant, settings: Settings, dossier: DossierSettings) -> Iterable[Finding]:
    if tenant[STATUSES] is None:
        return
    product = text(f"product.{dossier.product}")
    for label in QUOTE_STATUS_LABELS.get(dossier.product, QUOTE_STATUS_LABELS["sage100"]):
        if find_label(tenant[STATUSES], label) is None:
            yield Finding(Message.of("tenant.quote_status.missing", label=label, product=product),
                          Severity.WARNING)


ADDRESS_FIELDS = ("accountId", "address1", "address2", "city", "postcode", "region", "description")
"""The account-address fields the connector writes (`shared.sync.mapping.DELIVERY_ADDRESS`)."""


def _address_schema(client) -> Optional[dict | Message]:
    """`GET /accountAddresses/schema` (W1): what the tenant says of its account addresses, or why
    it could not be read; None when no dossier syncs them."""
    try:
        return client.schema(ACCOUNT_ADDRESSES)
    except SsmAuthError:
        raise
    except SsmError as exc:
        return Message.of("tenant.addresses.unavailable", reason=exc.user_message)


def _delivery_addresses(tenant: _Tenant, settings: Settings, dossier: DossierSettings) -> Iterable[Finding]:
    """Whether this dossier's delivery addresses can be synced on this tenant, and whether they are."""
    if dossier.delivery_addresses is False:
        yield Finding(Message.of("tenant.addresses.off"), Severity.INFO)
        return
    if not contract.documents_writes(ACCOUNT_ADDRESSES):
        yield Finding(Message.of("tenant.addresses.undocumented"),
                      Severity.WARNING if dossier.delivery_addresses else Severity.INFO)
        return
    schema = tenant.address_schema
    if isinstance(schema, Message):
        yield Finding(schema, Severity.WARNING)
        return
    properties = (schema or {}).get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        yield Finding(Message.of("tenant.addresses.unavailable",
                                 reason=text("tenant.addresses.schema_unreadable")), Severity.WARNING)
        return
    refused = [name for name in ADDRESS_FIELDS
               if not isinstance(properties.get(name), dict) or properties[name].get("readOnly") is True]
    if refused:
        yield Finding(Message.of("tenant.addresses.read_only", fields=", ".join(refused)), Severity.WARNING)
        return
    yield Finding(Message.of("tenant.addresses.on", fields=", ".join(ADDRESS_FIELDS)), Severity.INFO)


GROUP_CHECKS: tuple[GroupCheck, ...] = (_admin_user, _account_types, _document_statuses, _currency, _country,
                                        _rate, _language, _custom)
DOSSIER_CHECKS: tuple[DossierCheck, ...] = (_branch, _quote_statuses, _delivery_addresses)


def check_tenant(client, settings: Settings, *, clock: Callable[[], dt.datetime] = utcnow) -> TenantReport:
    """Read the tenant through `client` and report what the group and each active dossier lack."""
    findings: list[Finding] = []
    checked = tuple(d.id for d in settings.dossiers if d.active)
    try:
        lists = {resource: _read(client, resource, findings) for resource in LISTS_READ}
        custom = {resource: _custom_fields(client, resource) for resource in CUSTOM_FIELD_RESOURCES}
        addresses = _address_schema(client) if contract.documents_writes(ACCOUNT_ADDRESSES) and any(
            d.active and d.delivery_addresses is not False for d in settings.dossiers) else None
    except SsmAuthError as exc:
        findings.append(Finding(Message.of("tenant.login.refused", reason=exc.user_message), Severity.BLOCKING))
        return TenantReport(settings.group, clock(), tuple(findings), checked, settings=settings)
    tenant = _Tenant(lists, custom, addresses)
    for group_check in GROUP_CHECKS:
        findings += group_check(tenant, settings)
    if not settings.dossiers:
        findings += _branch(tenant, settings, None)
    for dossier in settings.dossiers:
        if not dossier.active:
            findings.append(Finding(Message.of("tenant.dossier.inactive"), Severity.INFO, dossier.id))
            continue
        for dossier_check in DOSSIER_CHECKS:
            findings += (replace(f, dossier=dossier.id) for f in dossier_check(tenant, settings, dossier))
    return TenantReport(settings.group, clock(), tuple(findings), checked, settings=settings)


def fix(client, report: TenantReport, *, clock: Callable[[], dt.datetime] = utcnow) -> TenantReport:
    """Create through the API what `report` found missing and the API can create (account types),
    nothing else; then check again. The new report's `actions` say what was done."""
    if report.settings is None:
        raise ValueError("this report carries no settings to check again with")
    actions: list[Message] = []
    done: set[tuple[str, str]] = set()
    for finding in report.findings:
        repair = finding.repair
        if repair is None or (repair.resource, repair.label) in done:
            continue
        done.add((repair.resource, repair.label))
        try:
            new_id = client.create(repair.resource, dict(repair.body))
        except SsmAuthError:
            raise
        except SsmError as exc:
            actions.append(Message.of("tenant.account_type.not_created", label=repair.label,
                                      reason=exc.user_message))
            continue
        actions.append(Message.of("tenant.account_type.created", label=repair.label, id=new_id))
    for resource in {resource for resource, _ in done}:
        client.forget_lookups(resource)
    if not actions:
        actions.append(Message.of("tenant.fix.nothing"))
    return replace(check_tenant(client, report.settings, clock=clock), actions=tuple(actions))
