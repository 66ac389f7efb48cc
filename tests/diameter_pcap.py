"""Write Diameter messages into a pcap file that Wireshark/tshark dissect as one TCP connection.

    from diameter_pcap import write_pcap
    write_pcap(tmp_path / "gy.pcap", [ccr.encode(), cca.encode()])

Each message becomes one Ethernet + IPv4 + TCP segment (linktype 1) of a single connection between
a client and a server on port 3868. Requests go client -> server and answers server -> client
(read from the R bit of each message), unless an item is given as `(payload, from_client)`.
Sequence and acknowledgement numbers are kept consistent per direction so that tshark's TCP
analysis has nothing to complain about; IP and TCP checksums are left 0 (tshark does not verify
them by default). The payload is written as given, so a corrupted message stays corrupted.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path

DIAMETER_PORT = 3868
LINKTYPE_ETHERNET = 1

_PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
_SNAPLEN = 262_144
_ETHERTYPE_IPV4 = 0x0800
_PROTO_TCP = 6
_TCP_ACK = 0x10
_TCP_PSH = 0x08

Item = bytes | tuple[bytes, bool]


def _ip(address: str) -> bytes:
    parts = [int(p) for p in address.split(".")]
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"not an IPv4 address: {address!r}")
    return bytes(parts)


def _frame(
    payload: bytes,
    src: tuple[str, int],
    dst: tuple[str, int],
    seq: int,
    ack: int,
    ip_id: int,
    macs: tuple[bytes, bytes],
) -> bytes:
    tcp = struct.pack(
        "!HHIIBBHHH",
        src[1],
        dst[1],
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        5 << 4,  # data offset: 5 words, no options
        _TCP_ACK | _TCP_PSH,
        65_535,  # window
        0,  # checksum (not verified by tshark by default)
        0,  # urgent pointer
    )
    total_length = 20 + len(tcp) + len(payload)
    if total_length > 0xFFFF:
        raise ValueError(f"{len(payload)} bytes do not fit in one IPv4 packet")
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,  # version 4, header length 5 words
        0,  # DSCP/ECN
        total_length,
        ip_id & 0xFFFF,
        0x4000,  # don't fragment
        64,  # TTL
        _PROTO_TCP,
        0,  # header checksum (not verified by tshark by default)
        _ip(src[0]),
        _ip(dst[0]),
    )
    ethernet = macs[1] + macs[0] + struct.pack("!H", _ETHERTYPE_IPV4)
    return ethernet + ip + tcp + payload


def pcap_bytes(
    items: Iterable[Item],
    *,
    client: tuple[str, int] = ("10.0.0.1", 40_001),
    server: tuple[str, int] = ("10.0.0.2", DIAMETER_PORT),
    start: float = 1_700_000_000.0,
    step: float = 0.001,
) -> bytes:
    """The pcap file contents (see the module docstring)."""
    macs = {True: (b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02")}
    macs[False] = (macs[True][1], macs[True][0])
    next_seq = {True: 1_000, False: 500_000}  # next sequence number per direction (True: client)
    out = [struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, _SNAPLEN, LINKTYPE_ETHERNET)]
    for index, item in enumerate(items):
        if isinstance(item, tuple):
            payload, from_client = item
        else:
            payload = item
            from_client = len(payload) > 4 and bool(payload[4] & 0x80)  # the R bit: a request
        src, dst = (client, server) if from_client else (server, client)
        frame = _frame(
            payload, src, dst, next_seq[from_client], next_seq[not from_client], index + 1, macs[from_client]
        )
        next_seq[from_client] += len(payload)
        micros = round((start + index * step) * 1_000_000)
        out.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


def write_pcap(
    path: str | os.PathLike[str],
    items: Iterable[Item],
    *,
    client: tuple[str, int] = ("10.0.0.1", 40_001),
    server: tuple[str, int] = ("10.0.0.2", DIAMETER_PORT),
    start: float = 1_700_000_000.0,
) -> Path:
    """Write `items` (encoded Diameter messages) to a pcap file at `path`; returns the path."""
    target = Path(path)
    target.write_bytes(pcap_bytes(items, client=client, server=server, start=start))
    return target
