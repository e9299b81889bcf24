"""How each kind of transfer moves balances: shared by the posting engine and the verifier."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.ledger.domain.model import Layer, Leg, Side, Transfer, TransferKind


@dataclass(frozen=True, slots=True)
class Movement:
    """One change of one balance of one account: the content of one journal entry."""

    leg_index: int
    account_id: str
    side: Side
    layer: Layer
    amount: int


def leg_movements(legs: tuple[Leg, ...], layer: Layer, sign: int = 1) -> list[Movement]:
    """Each leg debits its debit account and credits its credit account by its amount."""
    movements: list[Movement] = []
    for index, leg in enumerate(legs):
        movements.append(Movement(index, leg.debit_account, Side.DEBIT, layer, sign * leg.amount))
        movements.append(Movement(index, leg.credit_account, Side.CREDIT, layer, sign * leg.amount))
    return movements


def transfer_movements(transfer: Transfer, held: tuple[Leg, ...] = ()) -> list[Movement]:
    """The movements ``transfer`` made; a capture also needs the legs of the hold it settled."""
    match transfer.kind:
        case TransferKind.POSTING | TransferKind.REVERSAL:
            return leg_movements(transfer.legs, Layer.POSTED)
        case TransferKind.PENDING:
            return leg_movements(transfer.legs, Layer.PENDING)
        case TransferKind.CAPTURE:
            # The whole hold is released, then what was captured is posted.
            return [
                *leg_movements(held, Layer.PENDING, -1),
                *leg_movements(transfer.legs, Layer.POSTED),
            ]
        case TransferKind.VOID | TransferKind.EXPIRY:
            return leg_movements(transfer.legs, Layer.PENDING, -1)
