import pytest

from tests.fakes.ledger_app import LedgerApp, make_ledger_app
from tests.unit.ledger.application.scenario import FUNDED, create_ledger, open_account


@pytest.fixture
async def app() -> LedgerApp:
    """Ledger ``L`` with ``bank`` (unconstrained) and ``alice``/``bob`` (must stay funded)."""
    app = make_ledger_app()
    await create_ledger(app)
    await open_account(app, "bank")
    await open_account(app, "alice", flags=FUNDED)
    await open_account(app, "bob", flags=FUNDED)
    return app
