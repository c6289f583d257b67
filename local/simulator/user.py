"""An ordinary SSM user at work, through the same HTTP API: what tests and the demo do in SSM.

A sales rep edits a prospect, adds a contact, builds a quote and saves it, presses "sync".
Everything goes over HTTP with the user's own keys and the project's client, obeying the v4
contract (`shared.ssm.contract`): the user is found by e-mail, filters use the documented
`where` forms, lines are found by `salesorderId`, the euro by its `isoCode`, statuses at
`/salesorderStatuses`. The simulator applies the rules an ordinary user meets (read-only records
refuse edits) and records the calls like any other.
"""
from __future__ import annotations

from shared.ssm.client import SsmClient
from shared.ssm.contract import where_literal
from shared.ssm.lookups import (ACCOUNT_TYPE_CLIENT, ACCOUNT_TYPE_PROSPECT, ACCOUNT_TYPES,
                                BRANCHES, CURRENCIES, SALES_ORDER_STATUSES, STATUS_AWAITING_SYNC,
                                STATUS_DRAFT_PENDING)

EURO_ISO_CODE = "EUR"


class SsmUserSession:
    """One SSM user's session (keys from `SsmSimulator.user_credentials(email)`).

    The user is found by `email`, or else by the public key when it is an e-mail (the
    simulator's user keys are); there is no other way to know who "me" is.

    Lines of a quote are dicts: `product_id`, `quantity` (a whole number), `price`, optional
    `description`, `discount1`.. `discount4`. Returned ids are SSM ids.
    """

    def __init__(self, base_url: str, public_key: str, private_key: str, *, email: str | None = None):
        self._client = SsmClient(base_url, public_key, private_key, max_retries=3,
                                 backoff_base_s=0.05, backoff_max_s=1.0, rate_limit_per_s=50.0,
                                 timeout_s=10.0)
        self._email = email or (public_key if "@" in public_key else None)
        if not self._email:
            raise ValueError("an SSM user session needs the user's e-mail")
        self._user_id: int | None = None
        self._quote_count = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "SsmUserSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def user_id(self) -> int:
        """This user's SSM id, found by e-mail (`=` ignores case in SSM)."""
        if self._user_id is None:
            users = [u for u in self._client.list("users", where=f"email={where_literal(self._email)}")
                     if not u.get("deleted")]
            if not users:
                raise LookupError(f"no SSM user with e-mail {self._email}")
            self._user_id = int(min(users, key=lambda u: u["id"])["id"])
        return self._user_id

    def _default_branch(self) -> int:
        branches = [b for b in self._client.list(BRANCHES) if not b.get("deleted")]
        default = [b for b in branches if b.get("default")]
        return int(min(default or branches, key=lambda b: b["id"])["id"])

    def _euro(self) -> int:
        for currency in self._client.list(CURRENCIES):
            if not currency.get("deleted") and (currency.get("isoCode") or "").upper() == EURO_ISO_CODE:
                return int(currency["id"])
        raise LookupError("SSM has no currency with isoCode EUR")

    # --- accounts and contacts ----------------------------------------------------------------
    def create_account(self, name: str, *, prospect: bool = True, **fields) -> int:
        body = {"name": name,
                "typeId": self._client.lookup_id(ACCOUNT_TYPES, ACCOUNT_TYPE_PROSPECT if prospect
                                                 else ACCOUNT_TYPE_CLIENT),
                "branchId": self._default_branch(), "salesRepId1": self.user_id, **fields}
        return self._client.create("accounts", body)

    def edit_account(self, id: int, **fields) -> None:
        self._client.update("accounts", id, fields)

    def delete_account(self, id: int) -> None:
        self._client.delete("accounts", id)

    def convert_prospect_to_client(self, account_id: int) -> None:
        """What a user may try in SSM; the connector is expected to refuse it afterwards."""
        self._client.update("accounts", account_id,
                            {"typeId": self._client.lookup_id(ACCOUNT_TYPES, ACCOUNT_TYPE_CLIENT)})

    def create_contact(self, account_id: int, *, first_name: str, last_name: str,
                       sales_rep_id: int | None = None, **fields) -> int:
        """A contact: first and last name and its sales rep are required [W1, SW]; the rep
        defaults to this user."""
        body = {"accountId": account_id, "firstName": first_name, "lastName": last_name,
                "salesRepId": sales_rep_id if sales_rep_id is not None else self.user_id, **fields}
        return self._client.create("contacts", body)

    def edit_contact(self, id: int, **fields) -> None:
        self._client.update("contacts", id, fields)

    def delete_contact(self, id: int) -> None:
        self._client.delete("contacts", id)

    # --- quotes -------------------------------------------------------------------------------
    def create_quote(self, account_id: int, lines: list[dict], *, reference: str | None = None,
                     **fields) -> int:
        """A new quote saved as "Brouillon – En attente" with its lines."""
        self._quote_count += 1
        body = {"reference": reference or f"Devis {self._quote_count}",
                "accountId": account_id, "branchId": self._default_branch(),
                "salesRepId": self.user_id,
                "statusId": self._client.lookup_id(SALES_ORDER_STATUSES, STATUS_DRAFT_PENDING),
                "currencyId": self._euro(), **fields}
        quote_id = self._client.create("salesorders", body)
        for position, line in enumerate(lines, start=1):
            self.add_quote_line(quote_id, position=position, **line)
        return quote_id

    def add_quote_line(self, quote_id: int, *, product_id: int, quantity: int, price: float,
                       position: int | None = None, **fields) -> int:
        body = {"salesOrderId": quote_id, "productId": product_id, "quantity": quantity,
                "price": price, **fields}
        if position is not None:
            body["order"] = position
        return self._client.create("salesordersLines", body)

    def quote_lines(self, quote_id: int) -> list[dict]:
        """The live lines of a quote, in their `order` (lines read back `salesorderId`)."""
        lines = [line for line in self._client.list("salesordersLines", where=f"salesorderId={int(quote_id)}")
                 if not line.get("deleted")]
        return sorted(lines, key=lambda line: (line.get("order") is None, line.get("order") or 0, line["id"]))

    def save_quote(self, quote_id: int, **fields) -> None:
        """Save edits: as in Sage's own connector, any edit sends the quote back to pending."""
        status = self._client.lookup_id(SALES_ORDER_STATUSES, STATUS_DRAFT_PENDING)
        self._client.update("salesorders", quote_id, {**fields, "statusId": status})

    def request_sync(self, quote_id: int) -> None:
        """The user presses "sync": awaiting synchronisation, and read-only from now on."""
        status = self._client.lookup_id(SALES_ORDER_STATUSES, STATUS_AWAITING_SYNC)
        self._client.update("salesorders", quote_id, {"statusId": status, "readOnly": True})

    def get(self, resource: str, id: int) -> dict:
        return self._client.get(resource, id)
