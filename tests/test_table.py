"""tools/table.py: the one table layout of the tools (status, plan, bench)."""

from tools.table import columns


def test_every_column_but_the_last_is_padded_to_its_widest_cell_two_spaces_apart():
    assert columns([("NAME", "STATUS", "DETAIL"), ("gcp-l4", "OK", "a long detail")]) == [
        "NAME    STATUS  DETAIL",
        "gcp-l4  OK      a long detail",
    ]


def test_a_column_named_right_aligns_its_cells():
    assert columns([("CHECK", "LATENCY", "DETAIL"), ("/health", "7 ms", "")], right={1}) == [
        "CHECK    LATENCY  DETAIL",
        "/health     7 ms",
    ]


def test_the_indent_starts_every_line_and_no_line_ends_in_spaces():
    lines = columns([("A", "B", "CHOSEN"), ("long cell", "x", "")], indent="  ")
    assert lines == ["  A          B  CHOSEN", "  long cell  x"]
