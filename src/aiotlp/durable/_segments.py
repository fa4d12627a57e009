"""Segment files: their names, and what the queue knows about each one while it is open.

A segment is named by a 16-hex-digit id that only grows (``000000000000002a.seg``): the queue appends to the
newest one, reads from the oldest, and deletes a segment once every record in it was acknowledged. Ids are never
reused, not even after every segment was deleted, because the cursor file remembers the last one. A damaged
segment is renamed to ``<name>.corrupt`` and left for a human.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CORRUPT_SUFFIX",
    "CURSOR_NAME",
    "SEGMENT_SUFFIX",
    "Segment",
    "parse_segment_name",
    "segment_name",
]

SEGMENT_SUFFIX: Final = ".seg"
CORRUPT_SUFFIX: Final = ".corrupt"
CURSOR_NAME: Final = "cursor"
_ID_DIGITS: Final = 16


def segment_name(segment_id: int) -> str:
    return f"{segment_id:0{_ID_DIGITS}x}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The id of a segment file name, or None for any other name."""
    if not name.endswith(SEGMENT_SUFFIX):
        return None
    stem = name[: -len(SEGMENT_SUFFIX)]
    if len(stem) != _ID_DIGITS or any(ch not in "0123456789abcdef" for ch in stem):
        return None
    return int(stem, 16)


class Segment:
    """The open queue's state of one segment file.

    ``size`` is the end of the last complete record (for the segment being written, what the writer appended;
    for one found at start, the file's size). ``read_off`` is where the reader goes on. ``unacked`` counts records
    handed out and not yet acknowledged. ``unread_records``/``unread_items`` count what is left to read (for
    segments found at start, known once the start scan walked them).
    """

    __slots__ = (
        "checked",
        "damaged",
        "id",
        "name",
        "read_fd",
        "read_off",
        "sealed",
        "size",
        "unacked",
        "unread_items",
        "unread_records",
        "write_fd",
    )

    def __init__(self, segment_id: int, size: int, *, sealed: bool, checked: bool) -> None:
        self.id = segment_id
        self.name = segment_name(segment_id)
        self.size = size
        self.sealed = sealed
        self.checked = checked
        self.damaged = False
        self.read_fd: int | None = None
        self.write_fd: int | None = None
        self.read_off = 0
        self.unacked = 0
        self.unread_records = 0
        self.unread_items = 0

    def __repr__(self) -> str:
        return f"<Segment {self.name} size={self.size} read={self.read_off} unacked={self.unacked}>"
