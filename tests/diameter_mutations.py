"""Diameter frames changed the ways the readers' differential tests change them: an AVP put in at
any depth, the enclosing lengths grown to match (importable by name: pytest puts tests/ on
sys.path)."""

from __future__ import annotations

import struct

from cellcelly.diameter.codec import Avp, decode
from cellcelly.diameter.constants import AVP_V


def grow(frame: bytes, at: int, inserted: bytes, groups: tuple[int, ...] = ()) -> bytes:
    """`frame` with `inserted` (whole AVPs) put at `at`, the message's length and those of the
    Grouped AVPs at `groups` (the offsets of their headers, enclosing `at`) grown to match."""
    out = bytearray(frame[:at] + inserted + frame[at:])
    for offset in (0, *groups):
        word = struct.unpack_from("!I", out, offset + (0 if offset == 0 else 4))[0]
        top, length = word & 0xFF000000, word & 0xFFFFFF
        struct.pack_into("!I", out, offset + (0 if offset == 0 else 4), top | (length + len(inserted)))
    return bytes(out)


def avp_starts(frame: bytes) -> list[tuple[int, tuple[int, ...]]]:
    """Every AVP boundary of a well-formed frame: (offset, the Grouped AVPs enclosing it), so an
    AVP can be put there at any depth."""
    msg = decode(frame)
    out: list[tuple[int, tuple[int, ...]]] = []

    def walk(avps: list[Avp], offset: int, groups: tuple[int, ...]) -> int:
        for avp in avps:
            out.append((offset, groups))
            size = len(avp.encode())
            if avp.children is not None:
                header = 12 if avp.flags & AVP_V else 8
                walk(avp.children, offset + header, (*groups, offset))
            offset += size
        out.append((offset, groups))
        return offset

    walk(msg.avps, 20, ())
    return out
