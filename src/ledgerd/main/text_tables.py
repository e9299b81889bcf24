"""Plain-text layouts for a terminal: aligned columns, and ``name: value`` lines.

Columns are separated by two spaces, numbers aligned on the right, a header row in lower case
(as `ledgerd demo` prints its balances); nothing but spaces, so the output can be cut, grepped
and pasted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.money import Asset

_GAP = "  "


def columns(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[str] = ()
) -> str:
    """``rows`` under ``headers``; the columns named in ``right`` aligned on the right."""
    widths = [
        max(len(header), *(len(row[index]) for row in rows)) if rows else len(header)
        for index, header in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return _GAP.join(
            cell.rjust(width) if header in right else cell.ljust(width)
            for header, cell, width in zip(headers, cells, widths, strict=True)
        ).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """One ``name:  value`` line per pair, the values aligned."""
    width = max((len(name) for name, _ in pairs), default=0) + 1
    return "\n".join(f"{name + ':':<{width}}{_GAP}{value}".rstrip() for name, value in pairs)


def amount(minor_units: int, asset: str) -> str:
    """Minor units in the asset's own units (1234 of USD/2: ``12.34``).

    An asset that does not read as CODE/SCALE (none should) shows the minor units as they are.
    """
    try:
        return Asset.parse(asset).format(minor_units)
    except LedgerdError:
        return str(minor_units)


def pairs(metadata: Mapping[str, str]) -> str:
    """Metadata as ``KEY=VALUE`` pairs, by key, as ``--metadata`` takes them."""
    return ",".join(f"{key}={metadata[key]}" for key in sorted(metadata))
