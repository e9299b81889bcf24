"""Which rules the ledgerd.v1 requests follow: the tables API documents are made of.

The field rules are the checks' own (:mod:`ledgerd.kernel.rules`): ids, amounts, assets,
metadata and page sizes from the kernel, the ledger's limits from its domain and use cases.
The message rules restate AccountFlags' own checks as data (the tests hold them to those
checks). So the OpenAPI document, which the composition root builds from
:data:`LEDGER_API_RULES`, states what the server enforces. Every request field is either
ruled here or named in :data:`UNRULED` (the tests check both ways), so a new field cannot go
undocumented by accident.

What no rule here can say (a leg's two accounts must differ; a page token must be one this
API returned; a metadata filter names each key once) the .proto comments say.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledgerd.kernel.ids import ID_RULE
from ledgerd.kernel.metadata import (
    MAX_METADATA_ENTRIES,
    MAX_METADATA_VALUE,
    METADATA_KEY,
    METADATA_KEY_PATTERN,
)
from ledgerd.kernel.metadata import METADATA_RULE as METADATA
from ledgerd.kernel.money import AMOUNT_RULE, ASSET_RULE, MAX_AMOUNT
from ledgerd.kernel.paging import PAGE_SIZE_RULE
from ledgerd.kernel.rules import (
    ApiRules,
    AtMostOneSet,
    FieldRule,
    IntegerRule,
    ListRule,
    MessageRule,
    SetOnlyWith,
    TextRule,
)
from ledgerd.kernel.text import TEXT_CHARACTER, text_rule
from ledgerd.ledger.application.create_ledger import MAX_NAME_LENGTH
from ledgerd.ledger.application.post_transfers import MAX_BATCH
from ledgerd.ledger.application.queries.export_entries import AFTER_SEQUENCE_RULE
from ledgerd.ledger.application.queries.get_balances import MAX_BALANCES_PER_BATCH
from ledgerd.ledger.application.update_account_metadata import MAX_REMOVE_KEYS, MAX_VERSION
from ledgerd.ledger.domain.requests import KEY_RULE, MAX_LEGS, MAX_PENDING_TIMEOUT_SECONDS

PACKAGE = "ledgerd.v1"
ID = ID_RULE
# ListAccounts' metadata filter: KEY=VALUE pairs (see mapping.metadata_filter), checked as
# metadata once split.
_FILTER = ListRule(
    max_items=MAX_METADATA_ENTRIES,
    items=TextRule(pattern=f"^{METADATA_KEY}={TEXT_CHARACTER}{{0,{MAX_METADATA_VALUE}}}$"),
)
_BY_MESSAGE: dict[str, dict[str, FieldRule]] = {
    "CreateLedgerRequest": {"id": ID, "name": text_rule(MAX_NAME_LENGTH), "metadata": METADATA},
    "ListLedgersRequest": {"page_size": PAGE_SIZE_RULE},
    "GetLedgerRequest": {"ledger": ID},
    "AccountFlags": {"overdraft_limit": IntegerRule(0, MAX_AMOUNT)},
    "CreateAccountRequest": {"ledger": ID, "id": ID, "asset": ASSET_RULE, "metadata": METADATA},
    "GetAccountRequest": {"ledger": ID, "account": ID},
    "ListAccountsRequest": {"ledger": ID, "page_size": PAGE_SIZE_RULE, "metadata": _FILTER},
    "UpdateAccountMetadataRequest": {
        "ledger": ID,
        "account": ID,
        "metadata": METADATA,
        "remove_keys": ListRule(
            max_items=MAX_REMOVE_KEYS, items=TextRule(pattern=METADATA_KEY_PATTERN.pattern)
        ),
        "expected_version": IntegerRule(0, MAX_VERSION),
    },
    "AccountStatusRequest": {"ledger": ID, "account": ID},
    "Leg": {
        "debit_account": ID,
        "credit_account": ID,
        "amount": AMOUNT_RULE,
        "asset": ASSET_RULE,
    },
    "PendingOptions": {"timeout_seconds": IntegerRule(0, MAX_PENDING_TIMEOUT_SECONDS)},
    "TransferInput": {
        "idempotency_key": ID,
        "legs": ListRule(1, MAX_LEGS),
        "metadata": METADATA,
    },
    "PostTransferRequest": {"ledger": ID},
    "PostTransfersRequest": {"ledger": ID, "transfers": ListRule(1, MAX_BATCH)},
    "GetTransferRequest": {"ledger": ID, "transfer": ID},
    "GetTransferByKeyRequest": {"ledger": ID, "idempotency_key": KEY_RULE},
    "ListTransfersRequest": {"ledger": ID, "account": ID, "page_size": PAGE_SIZE_RULE},
    "CapturePendingRequest": {
        "ledger": ID,
        "transfer": ID,
        "amount": AMOUNT_RULE,
        "idempotency_key": ID,
        "metadata": METADATA,
    },
    "VoidPendingRequest": {
        "ledger": ID,
        "transfer": ID,
        "idempotency_key": ID,
        "metadata": METADATA,
    },
    "ReverseTransferRequest": {
        "ledger": ID,
        "transfer": ID,
        "idempotency_key": ID,
        "metadata": METADATA,
    },
    "GetBalanceRequest": {"ledger": ID, "account": ID},
    "BatchGetBalancesRequest": {
        "ledger": ID,
        "accounts": ListRule(1, MAX_BALANCES_PER_BATCH, items=ID),
    },
    "ListEntriesRequest": {"ledger": ID, "account": ID, "page_size": PAGE_SIZE_RULE},
    "ExportStatementRequest": {
        "ledger": ID,
        "account": ID,
        "after_sequence": AFTER_SEQUENCE_RULE,
    },
}

# Request fields whose protobuf type says all there is to say (booleans, enums, messages,
# instants), or whose rule no pattern can state (opaque page tokens).
UNRULED = frozenset(
    f"{PACKAGE}.{name}"
    for name in (
        "AccountFlags.debits_must_not_exceed_credits",
        "AccountFlags.credits_must_not_exceed_debits",
        "ListLedgersRequest.page_token",
        "CreateAccountRequest.flags",
        "ListAccountsRequest.page_token",
        "TransferInput.pending",
        "PostTransferRequest.transfer",
        "PostTransfersRequest.atomic",
        "ListTransfersRequest.start_time",
        "ListTransfersRequest.end_time",
        "ListTransfersRequest.page_token",
        "ListTransfersRequest.kind",
        "ListTransfersRequest.status",
        "GetBalanceRequest.as_of",
        "BatchGetBalancesRequest.as_of",
        "ListEntriesRequest.start_time",
        "ListEntriesRequest.end_time",
        "ListEntriesRequest.page_token",
    )
)

# By full field name, as protobuf descriptors spell it: "ledgerd.v1.Leg.amount".
FIELD_RULES: Mapping[str, FieldRule] = {
    f"{PACKAGE}.{message}.{field}": rule
    for message, fields in _BY_MESSAGE.items()
    for field, rule in fields.items()
}

_LIMITS = ("debits_must_not_exceed_credits", "credits_must_not_exceed_debits")
# By full message name; AccountFlags' checks, as data.
MESSAGE_RULES: Mapping[str, tuple[MessageRule, ...]] = {
    f"{PACKAGE}.AccountFlags": (AtMostOneSet(_LIMITS), SetOnlyWith("overdraft_limit", _LIMITS)),
}

LEDGER_API_RULES = ApiRules(fields=FIELD_RULES, messages=MESSAGE_RULES)
