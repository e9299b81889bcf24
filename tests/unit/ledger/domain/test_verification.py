import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from ledgerd.ledger.domain.chain import chained_hash
from ledgerd.ledger.domain.model import (
    Account,
    AccountFlags,
    Balances,
    Entry,
    Layer,
    LedgerHead,
    Leg,
    Side,
    Transfer,
    TransferKind,
    TransferStatus,
)
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    ExpiryRequest,
    ReversalRequest,
    VoidRequest,
)
from ledgerd.ledger.domain.verification import (
    ChainVerifier,
    JournalVerifier,
    VerificationReport,
)
from tests.unit.ledger.domain.book import EUR, FUNDED, LEDGER, Book, make_account, pay


@dataclass(frozen=True)
class Records:
    """What a ledger's storage holds, in the order the verifiers read it."""

    transfers: tuple[Transfer, ...]
    head: LedgerHead
    entries: tuple[Entry, ...]
    accounts: tuple[Account, ...]

    def transfer(self, sequence: int) -> Transfer:
        return self.transfers[sequence - 1]

    def with_transfer(self, sequence: int, transfer: Transfer) -> "Records":
        transfers = list(self.transfers)
        transfers[sequence - 1] = transfer
        return dataclasses.replace(self, transfers=tuple(transfers))

    def account(self, account_id: str) -> Account:
        return next(a for a in self.accounts if a.id == account_id)

    def with_account(self, account: Account) -> "Records":
        accounts = tuple(account if a.id == account.id else a for a in self.accounts)
        return dataclasses.replace(self, accounts=accounts)

    def entry_index(self, account_id: str, sequence: int) -> int:
        return next(
            i
            for i, e in enumerate(self.entries)
            if (e.account_id, e.account_sequence) == (account_id, sequence)
        )

    def with_entry(self, index: int, entry: Entry | None) -> "Records":
        entries = list(self.entries)
        if entry is None:
            del entries[index]
        else:
            entries[index] = entry
        return dataclasses.replace(self, entries=tuple(entries))


def _ledger() -> Records:
    """Every kind of transfer, two assets, constrained and unconstrained accounts."""
    book = Book(
        make_account("bank"),
        make_account("alice", flags=FUNDED),
        make_account("bob"),
        make_account("carol", flags=AccountFlags(credits_must_not_exceed_debits=True)),
        make_account("eur-bank", asset=EUR),
        make_account("eur-x", asset=EUR),
    )
    book.post(pay("fund", ("bank", "alice", 1000)))  # 1
    hold = book.post(pay("h1", ("alice", "bob", 100), pending=True, timeout=60))  # 2
    book.later(timedelta(seconds=10))
    book.post(CaptureRequest(hold.id, amount=40))  # 3
    hold = book.post(pay("h2", ("alice", "bob", 50), ("alice", "bank", 5), pending=True))  # 4
    book.post(VoidRequest(hold.id))  # 5
    hold = book.post(pay("h3", ("alice", "bob", 30), pending=True, timeout=5))  # 6
    book.later(timedelta(seconds=10))
    book.post(ExpiryRequest(hold.id))  # 7
    paid = book.post(pay("p", ("carol", "bob", 7)))  # 8
    book.post(ReversalRequest(paid.id))  # 9
    book.post(pay("eur", ("eur-bank", "eur-x", 5)))  # 10
    book.post(pay("open-hold", ("alice", "bob", 1), pending=True))  # 11
    book.later()
    return Records(
        transfers=tuple(sorted(book.transfers().values(), key=lambda t: t.sequence)),
        head=book.snapshot.head,
        entries=tuple(sorted(book.all_entries(), key=lambda e: (e.account_id, e.account_sequence))),
        accounts=tuple(sorted(book.snapshot.accounts.values(), key=lambda a: a.id)),
    )


LEDGER_RECORDS = _ledger()


def verify(records: Records) -> VerificationReport:
    report = VerificationReport(LEDGER)
    chain = ChainVerifier(report)
    for transfer in records.transfers:
        chain.feed(transfer)
    chain.finish(records.head)
    journal = JournalVerifier(report, chain.expected_balances())
    for entry in records.entries:
        journal.feed(entry)
    for account in records.accounts:
        journal.check_account(account)
    journal.finish()
    return report


def _rehashed(transfer: Transfer) -> Transfer:
    return dataclasses.replace(transfer, hash=chained_hash(transfer, transfer.prev_hash))


def test_a_clean_ledger_verifies() -> None:
    report = verify(LEDGER_RECORDS)

    assert report.problems == []
    assert report.ok
    assert report.transfers == 11
    assert report.entries == len(LEDGER_RECORDS.entries) == 28
    assert report.accounts == 6
    assert set(report.totals) == {"USD/2", "EUR/2"}
    assert all(totals.balanced for totals in report.totals.values())
    assert report.totals["EUR/2"].posted_credits == 5
    assert report.totals["USD/2"].pending_debits == 1


def test_an_empty_ledger_verifies() -> None:
    report = verify(Records((), LedgerHead(LEDGER), (), ()))

    assert report.ok
    assert report.totals == {}


TRANSFER_TAMPERING: dict[str, Callable[[Transfer], Transfer]] = {
    "ledger_id": lambda t: dataclasses.replace(t, ledger_id="other"),
    "id": lambda t: dataclasses.replace(t, id="forged"),
    "kind": lambda t: dataclasses.replace(t, kind=TransferKind.VOID),
    "idempotency_key": lambda t: dataclasses.replace(t, idempotency_key="forged"),
    "request_hash": lambda t: dataclasses.replace(t, request_hash="0" * 64),
    "legs": lambda t: dataclasses.replace(
        t, legs=tuple(dataclasses.replace(leg, amount=leg.amount + 1) for leg in t.legs)
    ),
    "legs.account": lambda t: dataclasses.replace(
        t, legs=(dataclasses.replace(t.legs[0], credit_account="mallory"),)
    ),
    "metadata": lambda t: dataclasses.replace(t, metadata={"forged": "yes"}),
    "created_at": lambda t: dataclasses.replace(t, created_at=t.created_at - timedelta(days=1)),
    "expires_at": lambda t: dataclasses.replace(
        t, expires_at=(t.expires_at or t.created_at) + timedelta(days=1)
    ),
    "target_id": lambda t: dataclasses.replace(t, target_id="t000001"),
    "hash": lambda t: dataclasses.replace(t, hash="a" * 64),
}


@pytest.mark.parametrize("tamper", TRANSFER_TAMPERING.values(), ids=TRANSFER_TAMPERING.keys())
def test_altering_a_hashed_field_is_detected(tamper: Callable[[Transfer], Transfer]) -> None:
    sequence = 3  # the partial capture: it has a target and, via its hold, a deadline
    records = LEDGER_RECORDS
    forged = tamper(records.transfer(sequence))
    assert forged != records.transfer(sequence)

    report = verify(records.with_transfer(sequence, forged))

    assert not report.ok
    assert any("#3" in problem for problem in report.problems), report.problems


@pytest.mark.parametrize("kind", [TransferKind.POSTING, TransferKind.PENDING])
def test_a_settling_record_turned_into_another_kind_is_reported(kind: TransferKind) -> None:
    # Even rehashed (so only the structure is wrong), and without crashing the verifier.
    forged = _rehashed(dataclasses.replace(LEDGER_RECORDS.transfer(3), kind=kind))

    report = verify(LEDGER_RECORDS.with_transfer(3, forged))

    assert f"transfer #3 (t000003): a {kind} transfer cannot settle another" in report.problems


def test_altering_and_rehashing_a_record_breaks_the_link_to_the_next() -> None:
    forged = _rehashed(
        dataclasses.replace(LEDGER_RECORDS.transfer(8), legs=(Leg("carol", "bob", 700, EUR),))
    )

    report = verify(LEDGER_RECORDS.with_transfer(8, forged))

    assert any(p.startswith("transfer #9") and "prev_hash" in p for p in report.problems)


def test_rehashing_the_last_record_is_caught_by_the_head() -> None:
    forged = _rehashed(dataclasses.replace(LEDGER_RECORDS.transfer(11), metadata={"x": "y"}))

    report = verify(LEDGER_RECORDS.with_transfer(11, forged))

    assert len(report.problems) == 1
    assert report.problems[0].startswith("ledger head #11")


def test_a_changed_sequence_is_detected() -> None:
    tampered = dataclasses.replace(LEDGER_RECORDS.transfer(5), sequence=6)

    report = verify(LEDGER_RECORDS.with_transfer(5, tampered))

    assert any("a gap or a repeat" in problem for problem in report.problems)


@pytest.mark.parametrize("dropped", [1, 5, 11])
def test_dropping_a_transfer_is_detected(dropped: int) -> None:
    transfers = tuple(t for t in LEDGER_RECORDS.transfers if t.sequence != dropped)

    report = verify(dataclasses.replace(LEDGER_RECORDS, transfers=transfers))

    assert not report.ok


def test_reordering_transfers_is_detected() -> None:
    transfers = list(LEDGER_RECORDS.transfers)
    transfers[3], transfers[4] = transfers[4], transfers[3]

    report = verify(dataclasses.replace(LEDGER_RECORDS, transfers=tuple(transfers)))

    assert any("a gap or a repeat" in problem for problem in report.problems)
    assert any("prev_hash" in problem for problem in report.problems)


@pytest.mark.parametrize(
    "head",
    [
        LedgerHead(LEDGER, 12, LEDGER_RECORDS.transfer(11).hash),
        LedgerHead(LEDGER, 11, "b" * 64),
        LedgerHead(LEDGER, 10, LEDGER_RECORDS.transfer(10).hash),
        LedgerHead(LEDGER),
    ],
)
def test_a_wrong_head_is_detected(head: LedgerHead) -> None:
    report = verify(dataclasses.replace(LEDGER_RECORDS, head=head))

    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"ledger head #{head.sequence}")


@pytest.mark.parametrize(
    ("sequence", "status"),
    [
        (2, TransferStatus.PENDING),  # captured hold shown as still pending
        (2, TransferStatus.VOIDED),  # captured hold shown as voided
        (1, TransferStatus.REVERSED),  # posting shown as reversed without a reversal
        (8, TransferStatus.POSTED),  # reversed posting shown as standing
        (11, TransferStatus.EXPIRED),  # open hold shown as expired without an expiry
    ],
)
def test_a_status_that_contradicts_the_chain_is_detected(
    sequence: int, status: TransferStatus
) -> None:
    tampered = dataclasses.replace(LEDGER_RECORDS.transfer(sequence), status=status)

    report = verify(LEDGER_RECORDS.with_transfer(sequence, tampered))

    assert not report.ok
    assert any(LEDGER_RECORDS.transfer(sequence).id in p for p in report.problems)


@pytest.mark.parametrize(
    ("sequence", "status"), [(11, TransferStatus.POSTED), (1, TransferStatus.PENDING)]
)
def test_a_status_foreign_to_the_kind_is_detected(sequence: int, status: TransferStatus) -> None:
    # A hold marked "posted" could never be captured, voided or expired again.
    tampered = dataclasses.replace(LEDGER_RECORDS.transfer(sequence), status=status)

    report = verify(LEDGER_RECORDS.with_transfer(sequence, tampered))

    transfer_id = LEDGER_RECORDS.transfer(sequence).id
    assert report.problems == [f"transfer {transfer_id} is {status}, but nothing settled it"]


def test_a_wrong_stored_balance_is_detected() -> None:
    bob = LEDGER_RECORDS.account("bob")
    richer = dataclasses.replace(
        bob,
        balances=dataclasses.replace(bob.balances, posted_credits=bob.balances.posted_credits + 1),
    )

    report = verify(LEDGER_RECORDS.with_account(richer))

    assert "account bob: stored balances differ from its entries" in report.problems
    assert "USD/2: total debits differ from total credits" in report.problems


def test_a_wrong_entry_count_is_detected() -> None:
    bob = LEDGER_RECORDS.account("bob")

    report = verify(
        LEDGER_RECORDS.with_account(dataclasses.replace(bob, entry_count=bob.entry_count + 1))
    )

    assert report.problems == ["account bob: entry count differs from its entries"]


ENTRY_TAMPERING: dict[str, Callable[[Entry], Entry]] = {
    "amount": lambda e: dataclasses.replace(e, amount=e.amount + 1),
    "balances_after": lambda e: dataclasses.replace(
        e, balances_after=dataclasses.replace(e.balances_after, pending_debits=1)
    ),
    "side": lambda e: dataclasses.replace(
        e, side=Side.DEBIT if e.side is Side.CREDIT else Side.CREDIT
    ),
    "layer": lambda e: dataclasses.replace(
        e, layer=Layer.POSTED if e.layer is Layer.PENDING else Layer.PENDING
    ),
    "account_sequence": lambda e: dataclasses.replace(e, account_sequence=e.account_sequence + 5),
}


@pytest.mark.parametrize("tamper", ENTRY_TAMPERING.values(), ids=ENTRY_TAMPERING.keys())
def test_a_bad_entry_is_detected(tamper: Callable[[Entry], Entry]) -> None:
    index = LEDGER_RECORDS.entry_index("bob", 2)  # bob's first credit (capture of #2)
    entry = LEDGER_RECORDS.entries[index]
    assert entry.side.value == "credit"
    assert entry.layer.value == "pending"

    report = verify(LEDGER_RECORDS.with_entry(index, tamper(entry)))

    assert any(p.startswith("entry bob#") for p in report.problems), report.problems


def test_a_missing_entry_is_detected() -> None:
    index = LEDGER_RECORDS.entry_index("alice", 3)

    report = verify(LEDGER_RECORDS.with_entry(index, None))

    assert "entry alice#4: expected #3, a gap or a repeat" in report.problems
    assert "account alice: stored balances differ from its entries" in report.problems


def test_a_repeated_entry_is_detected() -> None:
    entries = list(LEDGER_RECORDS.entries)
    index = LEDGER_RECORDS.entry_index("carol", 1)
    entries.insert(index, entries[index])

    report = verify(dataclasses.replace(LEDGER_RECORDS, entries=tuple(entries)))

    assert "entry carol#1: expected #2, a gap or a repeat" in report.problems


def test_a_one_sided_journal_is_unbalanced() -> None:
    # eur-x's only entry vanishes and its stored account is made to agree with the journal:
    # only the chain's replay and the global invariant can tell.
    index = LEDGER_RECORDS.entry_index("eur-x", 1)
    eur_x = dataclasses.replace(LEDGER_RECORDS.account("eur-x"), balances=Balances(), entry_count=0)

    report = verify(LEDGER_RECORDS.with_entry(index, None).with_account(eur_x))

    assert report.problems == [
        "account eur-x: stored balances differ from the hash chain",
        "EUR/2: total debits differ from total credits",
    ]


def _rewritten_leg() -> Records:
    """Transfer #10 moved 5 EUR/2; its two entries and both accounts now say 500."""
    records = LEDGER_RECORDS
    for account_id in ("eur-bank", "eur-x"):
        index = records.entry_index(account_id, 1)
        entry = records.entries[index]
        after = entry.balances_after
        forged_after = (
            dataclasses.replace(after, posted_debits=500)
            if after.posted_debits
            else dataclasses.replace(after, posted_credits=500)
        )
        records = records.with_entry(
            index, dataclasses.replace(entry, amount=500, balances_after=forged_after)
        )
        records = records.with_account(
            dataclasses.replace(records.account(account_id), balances=forged_after)
        )
    assert records.transfer(10).legs[0].amount == 5
    return records


def _truncated_chain() -> Records:
    """The last transfer (#11) is deleted and the head rewound; its entries stay."""
    return dataclasses.replace(
        LEDGER_RECORDS,
        transfers=LEDGER_RECORDS.transfers[:-1],
        head=LedgerHead(LEDGER, 10, LEDGER_RECORDS.transfer(10).hash),
    )


@pytest.mark.parametrize("forge", [_rewritten_leg, _truncated_chain], ids=["leg", "truncated"])
def test_a_journal_that_disagrees_with_the_chain_is_detected(
    forge: Callable[[], Records],
) -> None:
    # Every running balance and every total is consistent: only replaying the chain tells.
    report = verify(forge())

    assert report.problems
    assert all("differ from the hash chain" in problem for problem in report.problems)


def test_an_account_the_chain_moved_must_be_stored() -> None:
    accounts = tuple(a for a in LEDGER_RECORDS.accounts if a.id != "carol")
    entries = tuple(e for e in LEDGER_RECORDS.entries if e.account_id != "carol")

    report = verify(dataclasses.replace(LEDGER_RECORDS, accounts=accounts, entries=entries))

    assert "account carol: moved by the chain but not stored" in report.problems


def test_settling_a_transfer_twice_is_detected() -> None:
    # #7 (the expiry of #6) is re-pointed at #4, a hold #5 already voided.
    forged = dataclasses.replace(
        LEDGER_RECORDS.transfer(7), target_id=LEDGER_RECORDS.transfer(4).id
    )

    report = verify(LEDGER_RECORDS.with_transfer(7, _rehashed(forged)))

    assert "transfer #7 (t000007): settles t000004, already settled" in report.problems
    assert "transfer t000006 is expired, but nothing settled it" in report.problems


def test_a_reversal_pointed_at_a_hold_is_detected() -> None:
    forged = dataclasses.replace(
        LEDGER_RECORDS.transfer(9), target_id=LEDGER_RECORDS.transfer(4).id
    )

    report = verify(LEDGER_RECORDS.with_transfer(9, _rehashed(forged)))

    assert "transfer #9 (t000009): a reversal must settle an earlier transfer" in report.problems


def test_problems_are_capped() -> None:
    entries = tuple(dataclasses.replace(e, amount=e.amount + 1) for e in LEDGER_RECORDS.entries)
    transfers = tuple(dataclasses.replace(t, hash="c" * 64) for t in LEDGER_RECORDS.transfers)
    records = dataclasses.replace(LEDGER_RECORDS, transfers=transfers, entries=entries * 4)

    report = verify(records)

    assert len(report.problems) == 100


def test_a_transfer_created_before_its_predecessor_is_reported() -> None:
    earlier = LEDGER_RECORDS.transfer(10).created_at - timedelta(microseconds=1)
    forged = _rehashed(dataclasses.replace(LEDGER_RECORDS.transfer(11), created_at=earlier))
    records = dataclasses.replace(
        LEDGER_RECORDS.with_transfer(11, forged), head=LedgerHead(LEDGER, 11, forged.hash)
    )

    report = verify(records)

    assert report.problems == [
        f"transfer #11 ({forged.id}): created before #10, out of chain order"
    ]


def test_the_next_creation_time_never_goes_before_the_last() -> None:
    last = LEDGER_RECORDS.transfer(11).created_at
    head = LedgerHead(LEDGER, 11, "a" * 64, last)

    assert head.next_creation_time(last - timedelta(hours=1)) == last  # the clock stepped back
    assert head.next_creation_time(last + timedelta(seconds=1)) == last + timedelta(seconds=1)
    assert LedgerHead(LEDGER).next_creation_time(last) == last  # nothing before the first
