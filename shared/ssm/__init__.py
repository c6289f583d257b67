"""Sage Sales Management access: the client, its error resolution table, rate limiter and lookups."""
from shared.ssm.client import ClientStats, SsmClient, iso_millis, quote
from shared.ssm.lookups import (ACCOUNT_TYPE_CLIENT, ACCOUNT_TYPE_PROSPECT, ACCOUNT_TYPES, BRANCHES,
                                CURRENCIES, SALES_ORDER_STATUSES, STATUS_AWAITING_SYNC,
                                STATUS_CANCELLED, STATUS_DRAFT_PENDING, STATUS_DRAFT_VALIDATED,
                                STATUS_INVOICE, STATUS_ORDER)

__all__ = [
    "SsmClient", "ClientStats", "quote", "iso_millis",
    "ACCOUNT_TYPES", "BRANCHES", "SALES_ORDER_STATUSES", "CURRENCIES",
    "ACCOUNT_TYPE_CLIENT", "ACCOUNT_TYPE_PROSPECT",
    "STATUS_DRAFT_PENDING", "STATUS_DRAFT_VALIDATED", "STATUS_AWAITING_SYNC",
    "STATUS_ORDER", "STATUS_INVOICE", "STATUS_CANCELLED",
]
