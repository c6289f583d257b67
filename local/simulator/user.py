"""An ordinary SSM user at work, through the same HTTP API: what tests and the demo do in SSM.

A sales rep edits a prospect, adds a contact, builds a quote and saves it, presses "sync".
Everything goes over HTTP with the user's own keys, so the simulator applies the rules an
ordinary user meets (read-only records refuse edits) and records the calls like any other.
"""
from __future__ import annotations

from shared.ssm.client import SsmClient, quote
from shared.ssm.lookups import (ACCOUNT_TYPE_CLIENT, ACCOUNT_TYPE_PROSPECT, ACCOUNT_TYPES,
                                BRANCHES, CURRENCIES, SALES_ORDER_STATUSES, STATUS_AWAITING_SYNC,
                                STATUS_DRAFT_PENDING)


class SsmUserSession:
    """One SSM user's session (keys from `SsmSimulator.user_credentials(email)`).

    The user is found by `email`, or else by the public key when it is an e-mail (the
    simulator's user keys are), or else is the first active user.

    Lines of a quote are dicts: `product_id`, `quantity`, `price`, optional `description`,
    `discount1`.. `discount4`. Returned ids are SSM ids.
    """

    def __init__(self, base_url: str, public_key: str, private_key: str, *, email: str | None = None):
        self._client = SsmClient(base_url, public_key, private_key, max_retries=3,
                                 backoff_base_s=0.05, backoff_max_s=1.0, rate_limit_per_s=50.0,
                                 timeout_s=10.0)
        self._email = email or (public_key if "@" in public_key else None)
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
        """This user's SSM id (found by e-mail; without an e-mail, the first active user)."""
        if self._user_id is None:
            where = f"email={quote(self._email)}" if self._email else "isActive=1"
            users = list(self._client.list("users", where=where, order="id"))
            if not users:
                raise LookupError(f"no SSM user with e-mail {self._email}")
            self._user_id = int(users[0]["id"])
        return self._user_id

    def _default_branch(self) -> int:
        branches = [b for b in self._client.list(BRANCHES, order="id") if not b.get("deleted")]
        return int(branches[0]["id"])

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

    def create_contact(self, account_id: int, *, first_name: str | None = None,
                       last_name: str | None = None, **fields) -> int:
        body = {"accountId": account_id, "firstName": first_name, "lastName": last_name, **fields}
        return self._client.create("contacts", {k: v for k, v in body.items() if v is not None})

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
                "currencyId": self._client.lookup_id(CURRENCIES, "EUR"), **fields}
        quote_id = self._client.create("salesorders", body)
        for position, line in enumerate(lines, start=1):
            self.add_quote_line(quote_id, position=position, **line)
        return quote_id

    def add_quote_line(self, quote_id: int, *, product_id: int, quantity: float, price: float,
                       position: int | None = None, **fields) -> int:
        body = {"salesOrderId": quote_id, "productId": product_id, "quantity": quantity,
                "price": price, **fields}
        if position is not None:
            body["order"] = position
        return self._client.create("salesordersLines", body)

    def quote_lines(self, quote_id: int) -> list[dict]:
        return [line for line in self._client.list("salesordersLines",
                                                   where=f"salesOrderId.id={int(quote_id)}", order="order")
                if not line.get("deleted")]

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
