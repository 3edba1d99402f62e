"""The one way the tools print a table: columns two spaces apart, each as wide as its widest cell."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def columns(rows: Sequence[Sequence[str]], right: Collection[int] = (), indent: str = "") -> list[str]:
    """``rows`` (the header first) as lines: every column but the last padded to its widest cell, the
    columns numbered in ``right`` aligned right (numbers), the last left as is; trailing spaces trimmed."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return [
        indent
        + "  ".join(
            [
                *(
                    cell.rjust(width) if column in right else cell.ljust(width)
                    for column, (cell, width) in enumerate(zip(row[:-1], widths, strict=True))
                ),
                row[-1],
            ]
        ).rstrip()
        for row in rows
    ]
