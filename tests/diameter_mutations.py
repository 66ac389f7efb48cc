"""Diameter frames changed the ways the readers' differential tests change them: an AVP put in at
any depth, the enclosing lengths grown to match (importable by name: pytest puts tests/ on
sys.path)."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

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


def with_an_avp_put_in(
    frames: st.SearchStrategy[bytes], avps: st.SearchStrategy[Avp]
) -> st.SearchStrategy[bytes]:
    """A frame of `frames` with one of `avps` put in at any AVP boundary, at any depth."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        frame = draw(frames)
        at, groups = draw(st.sampled_from(avp_starts(frame)))
        return grow(frame, at, draw(avps).encode(), groups)

    return build()


def with_a_byte_flipped(frames: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        flipped = bytearray(draw(frames))
        flipped[draw(st.integers(0, len(flipped) - 1))] ^= draw(st.integers(1, 255))
        return bytes(flipped)

    return build()


def cut_short(frames: st.SearchStrategy[bytes]) -> st.SearchStrategy[tuple[bytes, bytes | None]]:
    """(a frame of `frames` cut anywhere; the same cut to whole words with its length field made to
    match, None when that leaves less than a header): a torn read, and a message missing its end."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
        frame = draw(frames)
        cut = draw(st.integers(0, len(frame) - 1))
        shortened = bytearray(frame[: cut - cut % 4])
        if len(shortened) < 20:
            return frame[:cut], None
        struct.pack_into("!I", shortened, 0, 0x01000000 | len(shortened))
        return frame[:cut], bytes(shortened)

    return build()
