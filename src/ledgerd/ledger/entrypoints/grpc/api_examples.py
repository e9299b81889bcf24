"""One request and its answer per ledger operation: the examples the API documents show.

They are one story on a fresh server, in order (tests/e2e/rest/test_api_examples.py replays
them and checks every answer), so each may use what the ones before it made: the ledger
``shop``, the accounts ``alice``, ``bank`` and ``bob``, the transfers posted. Answers are as a
server on a fixed clock gave them; ids and hashes are one run's. ExportStatement's answer is
a stream: its lines.
"""

from __future__ import annotations

from ledgerd.kernel.rules import ApiExample

# The journal's hashes (64 hex digits), named: written out, a line would pass the limit.
_HASH_1 = "1377c63d83b37b87fc017eccb2918defb6523b9fb9bb2176ae3f5285168ea88b"
_HASH_2 = "8edb85bf2392deb003879e62e9c90c0cb285ed17b3898ed9f585eca4104f6089"
_HASH_3 = "334d9882ba2b478dbc955f09f6db0bc1480a8c0773a14bbff695499c50e79dc4"
_HASH_4 = "cb258d4f537ee2147ccef50522e511ce601e4a313d22dba459ca72022939df2a"
_HASH_5 = "8e8637914a05858c167ac8038f455e01354c79ed1761a117fbdf07a3190a55dd"
_HASH_6 = "b2b8fa4c7f775e9b507315b72b5b12e6901457de67f856ebdd541f74dfb0e4f9"
_HASH_7 = "265636d396fe47c88e7b188917ba157ceeab17e32c4832be1d8d1d44203b0024"
_HASH_8 = "25102adb735540a1cf1ca397451b6c1b047b9309a8422a9ecbb8882914d5c382"
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
            "id": "88bc325dab654e81a2c2c42a15d54434",
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
        path="/v1/ledgers/shop/transfers/88bc325dab654e81a2c2c42a15d54434",
        request=None,
        response={
            "id": "88bc325dab654e81a2c2c42a15d54434",
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
            "id": "88bc325dab654e81a2c2c42a15d54434",
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
                        "id": "38f993fcc12345b2a5151f97627c72ba",
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
                        "id": "53ebe0f25fe34ac8a5d3d63549b17862",
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
        path="/v1/ledgers/shop/transfers?account=bob&kind=POSTING&page_size=10",
        request=None,
        response={
            "transfers": [
                {
                    "id": "38f993fcc12345b2a5151f97627c72ba",
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
                    "id": "53ebe0f25fe34ac8a5d3d63549b17862",
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
        path="/v1/ledgers/shop/transfers/770a606f98474155860776ef7df53bed:capture",
        request={"amount": "300"},
        response={
            "id": "958bf90a2dce4d6c80af230cb6affe6a",
            "ledger": "shop",
            "idempotency_key": "capture/770a606f98474155860776ef7df53bed",
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
            "target_id": "770a606f98474155860776ef7df53bed",
            "sequence": "5",
            "hash": _HASH_4,
            "prev_hash": _HASH_5,
            "metadata": {},
        },
    ),
    "VoidPending": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/transfers/78baeeec14844922ae87d4e35f3c4d7d:void",
        request={},
        response={
            "id": "a1bef8132d7a4ee1b99974987b354e9e",
            "ledger": "shop",
            "idempotency_key": "void/78baeeec14844922ae87d4e35f3c4d7d",
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
            "target_id": "78baeeec14844922ae87d4e35f3c4d7d",
            "sequence": "7",
            "hash": _HASH_6,
            "prev_hash": _HASH_7,
            "metadata": {},
        },
    ),
    "ReverseTransfer": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/transfers/38f993fcc12345b2a5151f97627c72ba:reverse",
        request={"idempotency_key": "refund-pay-1"},
        response={
            "id": "e93e0b8206274e46b050d936e672016a",
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
            "target_id": "38f993fcc12345b2a5151f97627c72ba",
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
                    "transfer_id": "88bc325dab654e81a2c2c42a15d54434",
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
                    "transfer_id": "38f993fcc12345b2a5151f97627c72ba",
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
    "ExportStatement": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/accounts/bob/statement:export",
        request=None,
        response=[
            {
                "account": "bob",
                "sequence": "1",
                "transfer_id": "38f993fcc12345b2a5151f97627c72ba",
                "transfer_sequence": "2",
                "side": "CREDIT",
                "layer": "POSTED",
                "amount": "100",
                "balance_after": {
                    "posted_credits": "100",
                    "available": "100",
                    "posted_debits": "0",
                    "pending_debits": "0",
                    "pending_credits": "0",
                },
                "created_at": "2030-01-02T03:04:05.123456Z",
                "leg_index": 0,
            },
            {
                "account": "bob",
                "sequence": "2",
                "transfer_id": "53ebe0f25fe34ac8a5d3d63549b17862",
                "transfer_sequence": "3",
                "side": "CREDIT",
                "layer": "POSTED",
                "amount": "200",
                "balance_after": {
                    "posted_credits": "300",
                    "available": "300",
                    "posted_debits": "0",
                    "pending_debits": "0",
                    "pending_credits": "0",
                },
                "created_at": "2030-01-02T03:04:05.123456Z",
                "leg_index": 0,
            },
            {
                "account": "bob",
                "sequence": "3",
                "transfer_id": "770a606f98474155860776ef7df53bed",
                "transfer_sequence": "4",
                "side": "CREDIT",
                "layer": "PENDING",
                "amount": "500",
                "balance_after": {
                    "posted_credits": "300",
                    "pending_credits": "500",
                    "available": "300",
                    "posted_debits": "0",
                    "pending_debits": "0",
                },
                "created_at": "2030-01-02T03:04:05.123456Z",
                "leg_index": 0,
            },
            {
                "account": "bob",
                "sequence": "4",
                "transfer_id": "958bf90a2dce4d6c80af230cb6affe6a",
                "transfer_sequence": "5",
                "side": "CREDIT",
                "layer": "PENDING",
                "amount": "-500",
                "balance_after": {
                    "posted_credits": "300",
                    "available": "300",
                    "posted_debits": "0",
                    "pending_debits": "0",
                    "pending_credits": "0",
                },
                "created_at": "2030-01-02T03:04:05.123456Z",
                "leg_index": 0,
            },
            {
                "account": "bob",
                "sequence": "5",
                "transfer_id": "958bf90a2dce4d6c80af230cb6affe6a",
                "transfer_sequence": "5",
                "side": "CREDIT",
                "layer": "POSTED",
                "amount": "300",
                "balance_after": {
                    "posted_credits": "600",
                    "available": "600",
                    "posted_debits": "0",
                    "pending_debits": "0",
                    "pending_credits": "0",
                },
                "created_at": "2030-01-02T03:04:05.123456Z",
                "leg_index": 0,
            },
            {
                "account": "bob",
                "sequence": "6",
                "transfer_id": "78baeeec14844922ae87d4e35f3c4d7d",
                "transfer_sequence": "6",
                "side": "CREDIT",
                "layer": "PENDING",
                "amount": "700",
                "balance_after": {
                    "posted_credits": "600",
                    "pending_credits": "700",
                    "available": "600",
                    "posted_debits": "0",
                    "pending_debits": "0",
                },
                "created_at": "2030-01-02T03:04:05.123456Z",
                "leg_index": 0,
            },
            {
                "account": "bob",
                "sequence": "7",
                "transfer_id": "a1bef8132d7a4ee1b99974987b354e9e",
                "transfer_sequence": "7",
                "side": "CREDIT",
                "layer": "PENDING",
                "amount": "-700",
                "balance_after": {
                    "posted_credits": "600",
                    "available": "600",
                    "posted_debits": "0",
                    "pending_debits": "0",
                    "pending_credits": "0",
                },
                "created_at": "2030-01-02T03:04:05.123456Z",
                "leg_index": 0,
            },
            {
                "account": "bob",
                "sequence": "8",
                "transfer_id": "e93e0b8206274e46b050d936e672016a",
                "transfer_sequence": "8",
                "side": "DEBIT",
                "layer": "POSTED",
                "amount": "100",
                "balance_after": {
                    "posted_debits": "100",
                    "posted_credits": "600",
                    "available": "500",
                    "pending_debits": "0",
                    "pending_credits": "0",
                },
                "created_at": "2030-01-02T03:04:05.123456Z",
                "leg_index": 0,
            },
        ],
    ),
    "BatchGetBalances": ApiExample(
        method="GET",
        path="/v1/ledgers/shop/balances:batchGet?accounts=alice&accounts=bank",
        request=None,
        response={
            "balances": [
                {
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
                {
                    "ledger": "shop",
                    "account": "bank",
                    "asset": "USD/2",
                    "balance": {
                        "posted_debits": "2500",
                        "posted_credits": "0",
                        "available": "-2500",
                        "pending_debits": "0",
                        "pending_credits": "0",
                    },
                },
            ]
        },
    ),
    "UpdateAccountMetadata": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/accounts/bank:updateMetadata",
        request={
            "metadata": {"kind": "float", "owner": "treasury"},
            "remove_keys": ["note"],
            "expected_version": "1",
        },
        response={
            "id": "bank",
            "ledger": "shop",
            "asset": "USD/2",
            "flags": {
                "debits_must_not_exceed_credits": False,
                "credits_must_not_exceed_debits": False,
                "overdraft_limit": "0",
            },
            "status": "OPEN",
            "metadata": {"kind": "float", "owner": "treasury"},
            "balance": {
                "posted_debits": "2500",
                "posted_credits": "0",
                "available": "-2500",
                "pending_debits": "0",
                "pending_credits": "0",
            },
            "created_at": "2030-01-02T03:04:05.123456Z",
            "version": "2",
        },
    ),
    "ListLedgers": ApiExample(
        method="GET",
        path="/v1/ledgers?page_size=10",
        request=None,
        response={
            "ledgers": [
                {
                    "id": "shop",
                    "name": "Shop",
                    "metadata": {"region": "eu"},
                    "created_at": "2030-01-02T03:04:05.123456Z",
                }
            ],
            "next_page_token": "",
        },
    ),
}
