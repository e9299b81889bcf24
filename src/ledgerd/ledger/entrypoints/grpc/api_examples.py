"""One request and its answer per ledger operation: the examples the API documents show.

They are one story on a fresh server, in order (tests/e2e/rest/test_api_examples.py replays
them and checks every answer), so each may use what the ones before it made: the ledger
``shop``, the accounts ``alice``, ``bank`` and ``bob``, the transfers posted. Answers are as a
server on a fixed clock gave them; ids and hashes are one run's. ExportStatement, a stream,
has none.
"""

from __future__ import annotations

from ledgerd.kernel.rules import ApiExample

# The journal's hashes (64 hex digits), named: written out, a line would pass the limit.
_HASH_1 = "69dec61be2c66585e61da54542e06411b76064bbd39ab10c72357e3ecd3eef5e"
_HASH_2 = "848e361997920e0d2c506a9dd3597defa435f9337f70dd815d6b5a81a5584af4"
_HASH_3 = "b01d851ba8109741912e7ae9850bd18b1828c003a75d8066ae71a6c7905cb5ed"
_HASH_4 = "fb5c0b568c0857bf9dad3745a596531d1130bc46ff0aa1059ed4a1c4e56c4373"
_HASH_5 = "ec8396ee1c18defa39b6e59fe8075830c7e71a20f7b923e409253a44f76af787"
_HASH_6 = "0440db9162e7495df96a678f7f1be0c54b7280ec8274eca9d66d7bae15e64aaf"
_HASH_7 = "0ae3bda2621d4123f79f258446694cd11c8e70771b46d5d453d6cbd83e0ef21b"
_HASH_8 = "efec055a788ae8bc0308ec713a14b9a463428417e3ee0593538571ba18f61be3"
_NO_HASH = "0" * 64  # the first transfer's prev_hash

LEDGER_API_EXAMPLES: dict[str, ApiExample] = {
    "CreateLedger": ApiExample(
        method="POST",
        path="/v1/ledgers",
        request={"id": "shop", "name": "Shop", "metadata": {"region": "eu"}},
        response={
            "id": "shop",
            "name": "Shop",
            "metadata": {"region": "eu"},
            "created_at": "2030-01-02T03:04:05.123456Z",
        },
    ),
    "GetLedger": ApiExample(
        method="GET",
        path="/v1/ledgers/shop",
        request=None,
        response={
            "id": "shop",
            "name": "Shop",
            "metadata": {"region": "eu"},
            "created_at": "2030-01-02T03:04:05.123456Z",
        },
    ),
    "CreateAccount": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/accounts",
        request={
            "id": "alice",
            "asset": "USD/2",
            "flags": {"debits_must_not_exceed_credits": True},
            "metadata": {"kind": "wallet"},
        },
        response={
            "id": "alice",
            "ledger": "shop",
            "asset": "USD/2",
            "flags": {
                "debits_must_not_exceed_credits": True,
                "credits_must_not_exceed_debits": False,
                "overdraft_limit": "0",
            },
            "status": "OPEN",
            "metadata": {"kind": "wallet"},
            "balance": {
                "posted_debits": "0",
                "posted_credits": "0",
                "pending_debits": "0",
                "pending_credits": "0",
                "available": "0",
            },
            "created_at": "2030-01-02T03:04:05.123456Z",
            "version": "0",
        },
    ),
    "PostTransfer": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/transfers",
        request={
            "idempotency_key": "top-up-1",
            "legs": [{"debit_account": "bank", "credit_account": "alice", "amount": "2500"}],
            "metadata": {"reason": "top-up"},
        },
        response={
            "id": "68a90c118daa4de481d221b2cbc991cb",
            "ledger": "shop",
            "idempotency_key": "top-up-1",
            "legs": [
                {
                    "debit_account": "bank",
                    "credit_account": "alice",
                    "amount": "2500",
                    "asset": "USD/2",
                }
            ],
            "kind": "POSTING",
            "status": "POSTED",
            "metadata": {"reason": "top-up"},
            "created_at": "2030-01-02T03:04:05.123456Z",
            "sequence": "1",
            "hash": _HASH_1,
            "prev_hash": _NO_HASH,
            "target_id": "",
        },
    ),
    "GetTransfer": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/transfers/68a90c118daa4de481d221b2cbc991cb",
        request=None,
        response={
            "id": "68a90c118daa4de481d221b2cbc991cb",
            "ledger": "shop",
            "idempotency_key": "top-up-1",
            "legs": [
                {
                    "debit_account": "bank",
                    "credit_account": "alice",
                    "amount": "2500",
                    "asset": "USD/2",
                }
            ],
            "kind": "POSTING",
            "status": "POSTED",
            "metadata": {"reason": "top-up"},
            "created_at": "2030-01-02T03:04:05.123456Z",
            "sequence": "1",
            "hash": _HASH_1,
            "prev_hash": _NO_HASH,
            "target_id": "",
        },
    ),
    "GetTransferByKey": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/transfers:lookup?idempotency_key=top-up-1",
        request=None,
        response={
            "id": "68a90c118daa4de481d221b2cbc991cb",
            "ledger": "shop",
            "idempotency_key": "top-up-1",
            "legs": [
                {
                    "debit_account": "bank",
                    "credit_account": "alice",
                    "amount": "2500",
                    "asset": "USD/2",
                }
            ],
            "kind": "POSTING",
            "status": "POSTED",
            "metadata": {"reason": "top-up"},
            "created_at": "2030-01-02T03:04:05.123456Z",
            "sequence": "1",
            "hash": _HASH_1,
            "prev_hash": _NO_HASH,
            "target_id": "",
        },
    ),
    "PostTransfers": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/transfers:batch",
        request={
            "atomic": True,
            "transfers": [
                {
                    "idempotency_key": "pay-1",
                    "legs": [{"debit_account": "alice", "credit_account": "bob", "amount": "100"}],
                },
                {
                    "idempotency_key": "pay-2",
                    "legs": [{"debit_account": "alice", "credit_account": "bob", "amount": "200"}],
                },
            ],
        },
        response={
            "results": [
                {
                    "transfer": {
                        "id": "6d9aa37898db4b4bbef759cbb1b7ff50",
                        "ledger": "shop",
                        "idempotency_key": "pay-1",
                        "legs": [
                            {
                                "debit_account": "alice",
                                "credit_account": "bob",
                                "amount": "100",
                                "asset": "USD/2",
                            }
                        ],
                        "kind": "POSTING",
                        "status": "POSTED",
                        "created_at": "2030-01-02T03:04:05.123456Z",
                        "sequence": "2",
                        "hash": _HASH_2,
                        "prev_hash": _HASH_1,
                        "metadata": {},
                        "target_id": "",
                    },
                    "replayed": False,
                },
                {
                    "transfer": {
                        "id": "f143e7919ebb48c88e0e57647357ba8b",
                        "ledger": "shop",
                        "idempotency_key": "pay-2",
                        "legs": [
                            {
                                "debit_account": "alice",
                                "credit_account": "bob",
                                "amount": "200",
                                "asset": "USD/2",
                            }
                        ],
                        "kind": "POSTING",
                        "status": "POSTED",
                        "created_at": "2030-01-02T03:04:05.123456Z",
                        "sequence": "3",
                        "hash": _HASH_3,
                        "prev_hash": _HASH_2,
                        "metadata": {},
                        "target_id": "",
                    },
                    "replayed": False,
                },
            ]
        },
    ),
    "ListTransfers": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/transfers?account=bob&page_size=10",
        request=None,
        response={
            "transfers": [
                {
                    "id": "6d9aa37898db4b4bbef759cbb1b7ff50",
                    "ledger": "shop",
                    "idempotency_key": "pay-1",
                    "legs": [
                        {
                            "debit_account": "alice",
                            "credit_account": "bob",
                            "amount": "100",
                            "asset": "USD/2",
                        }
                    ],
                    "kind": "POSTING",
                    "status": "POSTED",
                    "created_at": "2030-01-02T03:04:05.123456Z",
                    "sequence": "2",
                    "hash": _HASH_2,
                    "prev_hash": _HASH_1,
                    "metadata": {},
                    "target_id": "",
                },
                {
                    "id": "f143e7919ebb48c88e0e57647357ba8b",
                    "ledger": "shop",
                    "idempotency_key": "pay-2",
                    "legs": [
                        {
                            "debit_account": "alice",
                            "credit_account": "bob",
                            "amount": "200",
                            "asset": "USD/2",
                        }
                    ],
                    "kind": "POSTING",
                    "status": "POSTED",
                    "created_at": "2030-01-02T03:04:05.123456Z",
                    "sequence": "3",
                    "hash": _HASH_3,
                    "prev_hash": _HASH_2,
                    "metadata": {},
                    "target_id": "",
                },
            ],
            "next_page_token": "",
        },
    ),
    "CapturePending": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/transfers/c323cf79b1cd4bab834f4ba3c9a23d5a:capture",
        request={"amount": "300"},
        response={
            "id": "0e6a3e43068549b6b3a78e40feda71a6",
            "ledger": "shop",
            "idempotency_key": "capture/c323cf79b1cd4bab834f4ba3c9a23d5a",
            "legs": [
                {
                    "debit_account": "alice",
                    "credit_account": "bob",
                    "amount": "300",
                    "asset": "USD/2",
                }
            ],
            "kind": "CAPTURE",
            "status": "POSTED",
            "created_at": "2030-01-02T03:04:05.123456Z",
            "target_id": "c323cf79b1cd4bab834f4ba3c9a23d5a",
            "sequence": "5",
            "hash": _HASH_4,
            "prev_hash": _HASH_5,
            "metadata": {},
        },
    ),
    "VoidPending": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/transfers/533bf56added417ca62ffb461431e2da:void",
        request={},
        response={
            "id": "53279302244f490b8c334e14a238e1e5",
            "ledger": "shop",
            "idempotency_key": "void/533bf56added417ca62ffb461431e2da",
            "legs": [
                {
                    "debit_account": "alice",
                    "credit_account": "bob",
                    "amount": "700",
                    "asset": "USD/2",
                }
            ],
            "kind": "VOID",
            "status": "POSTED",
            "created_at": "2030-01-02T03:04:05.123456Z",
            "target_id": "533bf56added417ca62ffb461431e2da",
            "sequence": "7",
            "hash": _HASH_6,
            "prev_hash": _HASH_7,
            "metadata": {},
        },
    ),
    "ReverseTransfer": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/transfers/6d9aa37898db4b4bbef759cbb1b7ff50:reverse",
        request={"idempotency_key": "refund-pay-1"},
        response={
            "id": "0d6015c5246547c1823d0ad8368309ed",
            "ledger": "shop",
            "idempotency_key": "refund-pay-1",
            "legs": [
                {
                    "debit_account": "bob",
                    "credit_account": "alice",
                    "amount": "100",
                    "asset": "USD/2",
                }
            ],
            "kind": "REVERSAL",
            "status": "POSTED",
            "created_at": "2030-01-02T03:04:05.123456Z",
            "target_id": "6d9aa37898db4b4bbef759cbb1b7ff50",
            "sequence": "8",
            "hash": _HASH_8,
            "prev_hash": _HASH_6,
            "metadata": {},
        },
    ),
    "GetAccount": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/accounts/alice",
        request=None,
        response={
            "id": "alice",
            "ledger": "shop",
            "asset": "USD/2",
            "flags": {
                "debits_must_not_exceed_credits": True,
                "credits_must_not_exceed_debits": False,
                "overdraft_limit": "0",
            },
            "status": "OPEN",
            "metadata": {"kind": "wallet"},
            "balance": {
                "posted_debits": "600",
                "posted_credits": "2600",
                "available": "2000",
                "pending_debits": "0",
                "pending_credits": "0",
            },
            "created_at": "2030-01-02T03:04:05.123456Z",
            "version": "7",
        },
    ),
    "GetBalance": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/accounts/alice/balance",
        request=None,
        response={
            "ledger": "shop",
            "account": "alice",
            "asset": "USD/2",
            "balance": {
                "posted_debits": "600",
                "posted_credits": "2600",
                "available": "2000",
                "pending_debits": "0",
                "pending_credits": "0",
            },
        },
    ),
    "ListAccounts": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/accounts?metadata=kind%3Dwallet",
        request=None,
        response={
            "accounts": [
                {
                    "id": "alice",
                    "ledger": "shop",
                    "asset": "USD/2",
                    "flags": {
                        "debits_must_not_exceed_credits": True,
                        "credits_must_not_exceed_debits": False,
                        "overdraft_limit": "0",
                    },
                    "status": "OPEN",
                    "metadata": {"kind": "wallet"},
                    "balance": {
                        "posted_debits": "600",
                        "posted_credits": "2600",
                        "available": "2000",
                        "pending_debits": "0",
                        "pending_credits": "0",
                    },
                    "created_at": "2030-01-02T03:04:05.123456Z",
                    "version": "7",
                }
            ],
            "next_page_token": "",
        },
    ),
    "ListEntries": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/accounts/alice/entries?page_size=2",
        request=None,
        response={
            "entries": [
                {
                    "account": "alice",
                    "sequence": "1",
                    "transfer_id": "68a90c118daa4de481d221b2cbc991cb",
                    "transfer_sequence": "1",
                    "side": "CREDIT",
                    "layer": "POSTED",
                    "amount": "2500",
                    "balance_after": {
                        "posted_credits": "2500",
                        "available": "2500",
                        "posted_debits": "0",
                        "pending_debits": "0",
                        "pending_credits": "0",
                    },
                    "created_at": "2030-01-02T03:04:05.123456Z",
                    "leg_index": 0,
                },
                {
                    "account": "alice",
                    "sequence": "2",
                    "transfer_id": "6d9aa37898db4b4bbef759cbb1b7ff50",
                    "transfer_sequence": "2",
                    "side": "DEBIT",
                    "layer": "POSTED",
                    "amount": "100",
                    "balance_after": {
                        "posted_debits": "100",
                        "posted_credits": "2500",
                        "available": "2400",
                        "pending_debits": "0",
                        "pending_credits": "0",
                    },
                    "created_at": "2030-01-02T03:04:05.123456Z",
                    "leg_index": 0,
                },
            ],
            "next_page_token": "djE6Mg",
        },
    ),
    "FreezeAccount": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/accounts/bob:freeze",
        request={},
        response={
            "id": "bob",
            "ledger": "shop",
            "asset": "USD/2",
            "flags": {
                "debits_must_not_exceed_credits": False,
                "credits_must_not_exceed_debits": False,
                "overdraft_limit": "0",
            },
            "status": "FROZEN",
            "balance": {
                "posted_debits": "100",
                "posted_credits": "600",
                "available": "500",
                "pending_debits": "0",
                "pending_credits": "0",
            },
            "created_at": "2030-01-02T03:04:05.123456Z",
            "version": "7",
            "metadata": {},
        },
    ),
    "UnfreezeAccount": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/accounts/bob:unfreeze",
        request={},
        response={
            "id": "bob",
            "ledger": "shop",
            "asset": "USD/2",
            "flags": {
                "debits_must_not_exceed_credits": False,
                "credits_must_not_exceed_debits": False,
                "overdraft_limit": "0",
            },
            "status": "OPEN",
            "balance": {
                "posted_debits": "100",
                "posted_credits": "600",
                "available": "500",
                "pending_debits": "0",
                "pending_credits": "0",
            },
            "created_at": "2030-01-02T03:04:05.123456Z",
            "version": "8",
            "metadata": {},
        },
    ),
    "CloseAccount": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/accounts/old:close",
        request={},
        response={
            "id": "old",
            "ledger": "shop",
            "asset": "USD/2",
            "flags": {
                "debits_must_not_exceed_credits": False,
                "credits_must_not_exceed_debits": False,
                "overdraft_limit": "0",
            },
            "status": "CLOSED",
            "balance": {
                "posted_debits": "0",
                "posted_credits": "0",
                "pending_debits": "0",
                "pending_credits": "0",
                "available": "0",
            },
            "created_at": "2030-01-02T03:04:05.123456Z",
            "version": "1",
            "metadata": {},
        },
    ),
}
