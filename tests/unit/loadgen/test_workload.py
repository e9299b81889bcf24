from collections import Counter

from ledgerd.loadgen.config import Workload
from ledgerd.loadgen.workload import HOT_ACCOUNT, account_id, movement_source

N = 1_000


def _draw(workload: Workload, count: int = 20_000) -> list[tuple[str, str, int]]:
    source = movement_source(workload, N, seed=11, zipf_exponent=1.1)
    return [(m.debit, m.credit, m.amount) for m in (source.next() for _ in range(count))]


def test_every_movement_has_two_distinct_known_accounts_and_a_positive_amount() -> None:
    known = {account_id(index) for index in range(N)}
    for workload in Workload:
        for debit, credit, amount in _draw(workload):
            assert debit != credit
            assert {debit, credit} <= known
            assert 1 <= amount <= 10_000


def test_hot_puts_one_account_in_every_transfer_on_both_sides() -> None:
    hot = account_id(HOT_ACCOUNT)
    moves = _draw(Workload.HOT)
    assert all(hot in (debit, credit) for debit, credit, _ in moves)
    debited = sum(debit == hot for debit, _, _ in moves)
    assert debited == len(moves) // 2  # alternating: its balance stays near zero


def test_uniform_spreads_and_zipf_concentrates() -> None:
    def busiest_share(workload: Workload) -> float:
        counts = Counter(a for debit, credit, _ in _draw(workload) for a in (debit, credit))
        return counts.most_common(1)[0][1] / sum(counts.values())

    assert busiest_share(Workload.UNIFORM) < 0.005  # about 1/N each
    assert busiest_share(Workload.ZIPF) > 0.05


def test_the_same_seed_gives_the_same_load() -> None:
    assert _draw(Workload.ZIPF, 100) == _draw(Workload.ZIPF, 100)
    other = movement_source(Workload.ZIPF, N, seed=12, zipf_exponent=1.1)
    others = [(m.debit, m.credit, m.amount) for m in (other.next() for _ in range(100))]
    assert others != _draw(Workload.ZIPF, 100)
