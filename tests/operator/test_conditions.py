"""Status conditions keep the time of their last change, not of the operator's last look."""

from ledgerd_operator.conditions import Condition, render
from ledgerd_operator.reconcile import Migration, migration_state

EARLIER = "2026-01-01T00:00:00Z"


def test_an_unchanged_condition_keeps_its_transition_time() -> None:
    previous = [{"type": "Migrated", "status": "True", "lastTransitionTime": EARLIER}]
    (entry,) = render([Condition("Migrated", status=True, reason="r", message="m")], previous, 3)
    assert entry["lastTransitionTime"] == EARLIER
    assert entry["observedGeneration"] == 3


def test_a_changed_condition_gets_a_new_transition_time() -> None:
    previous = [{"type": "Migrated", "status": "True", "lastTransitionTime": EARLIER}]
    (entry,) = render([Condition("Migrated", status=False, reason="r", message="m")], previous, 3)
    assert entry["status"] == "False"
    assert entry["lastTransitionTime"] > EARLIER


def test_a_jobs_status_reads_as_a_migration_state() -> None:
    assert migration_state(None) is Migration.RUNNING
    assert migration_state({"status": {"active": 1}}) is Migration.RUNNING
    assert migration_state({"status": {"succeeded": 1}}) is Migration.SUCCEEDED
    failed = {"status": {"failed": 3, "conditions": [{"type": "Failed", "status": "True"}]}}
    assert migration_state(failed) is Migration.FAILED
    # A retried pod that failed once is not yet a failed Job.
    assert migration_state({"status": {"failed": 1, "active": 1}}) is Migration.RUNNING
