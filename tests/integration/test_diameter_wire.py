"""The DGW's Diameter on the wire, judged by two independent implementations: tshark and freeDiameter.

1. `test_gy_session_on_the_wire_as_tshark_dissects_it`: a live loopback capture of CER/CEA, a
   CCR-I/U/U/T session, a CCR-E, DWR/DWA and DPR/DPA against the embedded stack, dissected by
   tshark: every request has its answer (same hop-by-hop and end-to-end identifiers, R only on
   requests, P only on CCR/CCA), every AVP tshark decodes equals, byte for byte and by value, what
   our codec sent or read, and tshark reports nothing malformed and no expert warning or error.
2. `test_freediameter_as_a_peer_of_the_dgw`: freeDiameterd connects to the DGW (CER/CEA), answers
   the DGW's watchdog (Tw 1 s), receives our DPR when the DGW stops, reconnects, sends its own DWRs
   (its Tw is 6 s at least, +/- 2 s jitter) which we answer, and sends DPR when it gets SIGTERM.
3. `test_freediameter_relays_credit_control_to_the_dgw`: freeDiameterd as a relay between a Gy
   client and the DGW (routing by Destination-Realm): it parses and re-encodes every CCR and CCA.
4. Two DGW defects these tests found, now fixed and kept as regression tests: RAR/ASR behind a
   relay reach the client (not the relay), and answers carry the request's Proxy-Info.

The captures (and freeDiameter's logs) are kept under artifacts/ at the repository root.

freeDiameter 1.2.1 (Debian 12) gotchas, each handled below:
  * `ListenOn = "127.0.0.1"` is silently dropped (fd_ep_add_merge ignores loopback addresses), so
    freeDiameterd always listens on every address; we only pick a free port for it.
  * TLS: `SecPort = 0;` turns TLS off altogether, and only then does it start without `TLS_Cred`
    (with the default SecPort 3869 it refuses to start without a certificate and key).
  * An unknown peer (our Gy client in the relay test) is refused unless declared by ConnectPeer or
    allowed by acl_wl.fdx (`ALLOW_IPSEC <fqdn>`: no TLS expected from it).
  * Its Tw timer resets on every message it receives, so it never sends a DWR while the DGW's own
    1 s watchdog keeps the connection busy: the test needs two phases (see test 2).
  * dict_nasreq.fdx must be loaded before dict_dcca.fdx; dict_dcca_3gpp.fdx loads after them.
  * As a relay it appends Route-Record to answers as well as requests (always in 1.2.1; from 1.3.0
    `RouteRecordInAnswers = Never;` turns that off).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import shutil
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gy_client import CLIENT, answering, voice_ccr

import cellcelly_testing as testing
from cellcelly.deploy.child import free_port as any_free_port
from cellcelly.deploy.embedded import DEMO, EmbeddedStack
from cellcelly.dgw.server import DgwServer
from cellcelly.diameter.codec import DICTIONARY, Avp, Message, Type
from cellcelly.diameter.constants import (
    APP_COMMON,
    APP_CREDIT_CONTROL,
    APP_RELAY,
    CONTEXT_SMS,
    FLAG_E,
    FLAG_P,
    FLAG_R,
    FLAG_T,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
    Result,
)
from cellcelly.diameter.peer import PeerConnection, State, connect
from cellcelly_testing import require

pytestmark = [pytest.mark.integration]

TESTS = Path(__file__).resolve().parents[1]
ARTIFACTS = TESTS.parent / "artifacts"
FD_EXTENSIONS = Path("/usr/lib/freeDiameter")

DGW_HOST = "dgw.cellcelly.local"
DGW_REALM = "cellcelly.local"
FD_HOST = "fd.test.local"
FD_REALM = "test.local"

TSHARK = shutil.which("tshark")
CAPTURER = shutil.which("dumpcap")
FREEDIAMETERD = shutil.which("freeDiameterd")


# --- what the tests need from this machine ------------------------------------------------------------


def require_tshark(config: pytest.Config) -> None:
    require(bool(TSHARK and CAPTURER), "tshark/dumpcap not installed: apt-get install tshark")


def require_freediameter(config: pytest.Config) -> None:
    require_tshark(config)
    missing = [
        name
        for name in ("dict_nasreq", "dict_dcca", "dict_dcca_3gpp", "acl_wl", "rt_default", "dbg_msg_dumps")
        if not (FD_EXTENSIONS / f"{name}.fdx").exists()
    ]
    require(
        bool(FREEDIAMETERD) and not missing,
        f"freeDiameterd or {missing} missing: apt-get install freediameter freediameter-extensions",
    )


def free_port() -> int:
    """A TCP port free on every address (freeDiameterd binds 0.0.0.0, see the module docstring)."""
    return any_free_port("0.0.0.0")


def keep(path: Path, name: str) -> None:
    """Copy a capture or a log to artifacts/ (git-ignored) for a human to open in Wireshark."""
    ARTIFACTS.mkdir(exist_ok=True)
    if path.exists():
        shutil.copyfile(path, ARTIFACTS / name)


async def until(
    condition: Callable[[], bool], timeout: float, what: str, seen: Callable[[], str] = str
) -> None:
    """Wait for `condition`; on timeout, say what `seen` shows (a peer's log: a CI failure is read
    from its output alone)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{seen()}")
        await asyncio.sleep(0.02)


# --- external processes: dumpcap and freeDiameterd -------------------------------------------------------


class External:
    """A child process with its output in a file; `kill()` is the teardown's safety net."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self._out = None  # type: Any
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_for_output(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.argv[0]}: no {needle!r} after {timeout}s:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.02)

    async def stop(self, sig: int, timeout: float) -> int:
        """Send `sig`, wait for the exit (kill after `timeout`); returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.to_thread(self.proc.wait, timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 10)
        self._close()
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


@pytest.fixture
def reaper() -> Iterator[list[External]]:
    """Every child process a test starts; whatever is still running at teardown is killed."""
    started: list[External] = []
    yield started
    for child in started:
        child.kill()


class Capture(External):
    """dumpcap on the loopback interface, limited to some TCP ports, into a pcapng.

    Its "Capturing on 'Loopback: lo'" comes before the socket receives anything: packets sent in
    the next ~50 ms are not captured (the first version of this test lost its CER and CCRs so).
    `begin` therefore sends empty UDP datagrams to the first port, which the filter also takes,
    until dumpcap's packet counter ("Packets: N", updated about twice a second on stderr) shows them.
    """

    def __init__(self, pcap: Path, ports: list[int]) -> None:
        bpf = " or ".join(f"tcp port {p}" for p in ports) + f" or udp port {ports[0]}"
        super().__init__([str(CAPTURER), "-i", "lo", "-f", bpf, "-w", str(pcap)], pcap.with_suffix(".log"))
        self.pcap = pcap
        self.probe = ports[0]
        self.status: int | None = None

    async def begin(self, config: pytest.Config) -> None:
        self.start()
        try:
            await self.wait_for_output("Capturing on", 15)
        except RuntimeError as exc:
            require(False, f"cannot capture on lo: {exc}")
        deadline = time.monotonic() + 15
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            while not any(int(n) for n in re.findall(r"Packets: (\d+)", self.text())):
                assert self.running, self.text()
                assert time.monotonic() < deadline, f"dumpcap captured no probe: {self.text()}"
                probe.sendto(b"", ("127.0.0.1", self.probe))
                await asyncio.sleep(0.02)

    async def end(self, keep_as: str) -> None:
        """Stop (SIGINT: dumpcap writes out what it has) and copy the capture to artifacts/."""
        if self.proc is None:
            return
        await asyncio.sleep(0.3)  # the last FIN/ACKs into the capture
        self.status = await self.stop(signal.SIGINT, 10)
        keep(self.pcap, keep_as)

    def check(self) -> None:
        assert self.status == 0 and self.pcap.exists(), self.text()


class FreeDiameter(External):
    """freeDiameterd with a configuration of its own in `workdir`, connecting to the DGW."""

    def __init__(
        self, workdir: Path, dgw_port: int, *, accept: tuple[str, ...] = (), route_realm: str = ""
    ) -> None:
        self.port = free_port()
        conf = workdir / "freediameter.conf"
        extensions = [
            # dict_nasreq first: dict_dcca refers to AVPs it defines
            f'LoadExtension = "{FD_EXTENSIONS}/dict_nasreq.fdx";',
            f'LoadExtension = "{FD_EXTENSIONS}/dict_dcca.fdx";',
            f'LoadExtension = "{FD_EXTENSIONS}/dict_dcca_3gpp.fdx";',
            # every message sent and received, parse/routing errors and peer events, as trees
            f'LoadExtension = "{FD_EXTENSIONS}/dbg_msg_dumps.fdx" : "0x8088";',
        ]
        if accept:
            acl = workdir / "acl_wl.conf"
            acl.write_text("ALLOW_IPSEC " + " ".join(accept) + "\n")
            extensions.append(f'LoadExtension = "{FD_EXTENSIONS}/acl_wl.fdx" : "{acl}";')
        if route_realm:
            routes = workdir / "rt_default.conf"
            routes.write_text(f'dr="{route_realm}" : "{DGW_HOST}" += 100 ;\n')
            extensions.append(f'LoadExtension = "{FD_EXTENSIONS}/rt_default.fdx" : "{routes}";')
        conf.write_text(
            "\n".join(
                [
                    f'Identity = "{FD_HOST}";',
                    f'Realm = "{FD_REALM}";',
                    f"Port = {self.port};",
                    "SecPort = 0;  # no TLS listener, so no TLS_Cred needed",
                    "No_SCTP;",
                    "No_IPv6;",
                    "TcTimer = 1;",
                    "TwTimer = 6;  # the minimum it accepts",
                    *extensions,
                    f'ConnectPeer = "{DGW_HOST}" {{ ConnectTo = "127.0.0.1"; Port = {dgw_port}; No_TLS; '
                    "TcTimer = 1; TwTimer = 6; };",
                    "",
                ]
            )
        )
        super().__init__([str(FREEDIAMETERD), "-c", str(conf)], workdir / "freediameter.log")

    async def begin(self) -> None:
        self.start()
        await self.wait_for_output("freeDiameterd daemon initialized.", 15)

    def open_to(self, peer: str) -> int:
        """How many times freeDiameter's state machine moved `peer` to STATE_OPEN."""
        return len(re.findall(rf"-> 'STATE_OPEN'\s+'{re.escape(peer)}'", self.text()))

    def dumps(self) -> list[tuple[str, str, str]]:
        """(RCV|SND, peer, command name) of every message dbg_msg_dumps logged, in order."""
        found = re.findall(r"(RCV from|SND to) '([^']*)':\n[^\n]*?'([A-Za-z-]+)'", self.text())
        return [("RCV" if d.startswith("RCV") else "SND", peer, cmd) for d, peer, cmd in found]

    def errors(self) -> list[str]:
        markers = ("PARSING ERROR", "ROUTING ERROR", "DROPPED", "FAILOVER", "(no model)", "invalid model")
        return [line for line in self.text().splitlines() if any(m in line for m in markers)]


def running_stack(data_dir: Path, **settings: Any) -> contextlib.AbstractAsyncContextManager[EmbeddedStack]:
    """The stack `make run` starts; CLIENT, freeDiameter (FD_HOST) and the relay test's Gy client are
    all in test.local, which it allows."""
    return testing.running_stack(data_dir, **{"dgw_allowed_peers": f"@{FD_REALM}", **settings})


# --- Gy requests (as test_dgw.py builds them) --------------------------------------------------------------


def ccr(
    session: str,
    kind: int,
    number: int,
    *,
    rg: int = 1,
    time_requested: int | None = 60,
    time_used: int = 0,
) -> Message:
    """A voice CCR for DEMO's subscriber (`voice_ccr`), asking 60 s unless told."""
    return voice_ccr(session, kind, number, DEMO.msisdn, rg=rg, requested=time_requested, used=time_used)


def sms_event(session: str) -> Message:
    """A CCR-E for one SMS (direct debiting, rating group 2, to a German number)."""
    msg = ccr(session, 4, 0, rg=2, time_requested=None)
    context = [a.code for a in msg.avps].index(Code.SERVICE_CONTEXT_ID)
    msg.avps[context] = Avp.utf8(Code.SERVICE_CONTEXT_ID, CONTEXT_SMS)
    msg.avps[-2] = Avp.grouped(
        Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
        [
            Avp.u32(Code.RATING_GROUP, 2),
            Avp.grouped(Code.REQUESTED_SERVICE_UNIT, [Avp.u64(Code.CC_SERVICE_SPECIFIC_UNITS, 1)]),
        ],
    )
    address = Avp.grouped(
        Code3gpp.RECIPIENT_ADDRESS,
        [Avp.utf8(Code3gpp.ADDRESS_DATA, "4915112345678", VENDOR_3GPP)],
        VENDOR_3GPP,
    )
    recipient = Avp.grouped(Code3gpp.RECIPIENT_INFO, [address], VENDOR_3GPP)
    sms = Avp.grouped(Code3gpp.SMS_INFORMATION, [recipient], VENDOR_3GPP)
    msg.avps[-1] = Avp.grouped(Code3gpp.SERVICE_INFORMATION, [sms], VENDOR_3GPP)
    return msg


# --- tshark's dissection ----------------------------------------------------------------------------------

PI_WARN = 0x00600000  # epan/proto.h severities: chat 0x200000, note 0x400000, warn 0x600000, error 0x800000
# TCP's own loss recovery on a loaded loopback (the kernel resends; the application reads each byte
# once, in order): warnings about TCP, not about what we sent. A reset is not one of them.
TCP_RECOVERY = {
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
    "tcp.analysis.duplicate_ack",
    "tcp.analysis.out_of_order",
    "tcp.options.sack.dsack",
}
_AVP_META = {
    "diameter.avp.code",
    "diameter.avp.flags",
    "diameter.avp.len",
    "diameter.avp.vendorId",
    "diameter.avp.pad",
}


@dataclasses.dataclass
class WireAvp:
    code: int
    vendor: int
    flags: int
    name: str  # tshark's name for it ("" when tshark does not know the AVP)
    show: str  # tshark's decoded value
    raw: bytes  # the value's bytes, padding excluded
    ipv4: str | None
    children: list[WireAvp] | None


@dataclasses.dataclass
class WireMsg:
    frame: int
    stream: int
    src_port: int
    dst_port: int
    flags: int
    code: int
    app: int
    hop_by_hop: int
    end_to_end: int
    answer_to: int | None  # tshark's own pairing: the frame of the request this answers
    avps: list[WireAvp]

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_R)

    def walk(self) -> Iterator[WireAvp]:
        stack = list(reversed(self.avps))
        while stack:
            avp = stack.pop()
            yield avp
            stack.extend(reversed(avp.children or []))

    def all(self, name: str) -> list[str]:
        """The decoded values of every AVP called `name`, at any depth, in order."""
        return [a.show for a in self.walk() if a.name == name]

    def top(self, name: str) -> str:
        """The value of the message's own (not nested) AVP called `name`."""
        values = [a.show for a in self.avps if a.name == name]
        assert len(values) == 1, (name, self)
        return values[0]

    def avp(self, name: str) -> WireAvp:
        found = [a for a in self.walk() if a.name == name]
        assert len(found) == 1, (name, self)
        return found[0]

    def one(self, name: str) -> str:
        values = self.all(name)
        assert len(values) == 1, (name, values, self)
        return values[0]


def _field(el: ET.Element, name: str) -> ET.Element | None:
    return next((f for f in el if f.get("name") == name), None)


def _shower(proto: ET.Element, frame: int) -> Callable[[str], str]:
    def show(name: str) -> str:
        found = _field(proto, name)
        assert found is not None, (frame, name)
        return found.get("show", "")

    return show


def _wire_avp(el: ET.Element) -> WireAvp:
    code_el, flags_el = _field(el, "diameter.avp.code"), _field(el, "diameter.avp.flags")
    assert code_el is not None and flags_el is not None, ET.tostring(el)[:300]
    vendor_el = _field(el, "diameter.avp.vendorId")
    value = next(
        (f for f in el if f.get("name", "").startswith("diameter.") and f.get("name") not in _AVP_META), None
    )
    children = None
    ipv4 = None
    if value is not None:
        nested = [f for f in value if f.get("name") == "diameter.avp"]
        children = [_wire_avp(f) for f in nested] if nested else None
        ipv4_el = next((f for f in value if f.get("name", "").endswith(".IPv4")), None)
        ipv4 = None if ipv4_el is None else ipv4_el.get("show")
    name = (value.get("name") or "").removeprefix("diameter.") if value is not None else ""
    return WireAvp(
        code=int(code_el.get("show", "-1")),
        vendor=int(vendor_el.get("show", "0")) if vendor_el is not None else 0,
        flags=int(flags_el.get("value", "0"), 16),
        name=name if name and name != "avp.unknown" else "",
        show=value.get("show", "") if value is not None else "",
        raw=bytes.fromhex(value.get("value", "")) if value is not None else b"",
        ipv4=ipv4,
        children=children,
    )


@dataclasses.dataclass
class Dissection:
    messages: list[WireMsg]
    problems: list[str]  # malformed packets and expert infos of severity warning or error
    pdml: str

    def answer_to(self, request: WireMsg) -> WireMsg:
        """The one answer with the request's command, hop-by-hop and end-to-end identifiers."""
        found = [
            m
            for m in self.messages
            if not m.is_request
            and m.stream == request.stream
            and (m.code, m.hop_by_hop, m.end_to_end) == (request.code, request.hop_by_hop, request.end_to_end)
        ]
        assert len(found) == 1, (request, found)
        answer = found[0]
        assert answer.frame > request.frame and answer.answer_to == request.frame, (request, answer)
        assert (answer.src_port, answer.dst_port) == (request.dst_port, request.src_port)
        return answer


async def dissect(pcap: Path, ports: list[int]) -> Dissection:
    decode_as = [arg for p in ports for arg in ("-d", f"tcp.port=={p},diameter")]
    done = await asyncio.to_thread(
        subprocess.run,
        [str(TSHARK), "-n", "-r", str(pcap), *decode_as, "-T", "pdml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout)
    messages: list[WireMsg] = []
    problems: list[str] = []
    for packet in root.iter("packet"):
        fields = {f.get("name"): f for f in packet.iter("field")}
        frame = int(fields["frame.number"].get("show", "0"))
        for el in packet.iter():
            name = el.get("name", "")
            if name.startswith(("_ws.malformed", "_ws.short")):
                problems.append(f"frame {frame}: {el.get('showname') or name}")
            if name == "_ws.expert":
                severity = _field(el, "_ws.expert.severity")
                recovery = any(f.get("name") in TCP_RECOVERY for f in el)
                if severity is not None and int(severity.get("show", "0")) >= PI_WARN and not recovery:
                    problems.append(f"frame {frame}: {el.get('showname')}")
        if "tcp.stream" not in fields:
            continue
        tcp = (int(fields["tcp.stream"].get("show", "0")), int(fields["tcp.srcport"].get("show", "0")))
        dst_port = int(fields["tcp.dstport"].get("show", "0"))
        for proto in packet.findall("proto[@name='diameter']"):
            show = _shower(proto, frame)
            answer_to = _field(proto, "diameter.answer_to")
            messages.append(
                WireMsg(
                    frame=frame,
                    stream=tcp[0],
                    src_port=tcp[1],
                    dst_port=dst_port,
                    flags=int(show("diameter.flags"), 16),
                    code=int(show("diameter.cmd.code")),
                    app=int(show("diameter.applicationId")),
                    hop_by_hop=int(show("diameter.hopbyhopid"), 16),
                    end_to_end=int(show("diameter.endtoendid"), 16),
                    answer_to=int(answer_to.get("show", "0")) if answer_to is not None else None,
                    avps=[_wire_avp(f) for f in proto if f.get("name") == "diameter.avp"],
                )
            )
    return Dissection(messages, problems, done.stdout)


def assert_clean(wire: Dissection) -> None:
    assert wire.problems == []
    assert "_ws.malformed" not in wire.pdml and "Malformed" not in wire.pdml
    assert '_ws.expert.severity" showname="Severity level: Error' not in wire.pdml


_NUMBERS = {Type.U32, Type.U64, Type.I32, Type.I64, Type.ENUM}


def assert_avps_equal(wire: list[WireAvp], ours: list[Avp], where: str) -> None:
    """tshark read exactly the AVPs our codec wrote or read: same codes, vendors and flags in the
    same order and nesting, the same value bytes, and tshark's typed value equals ours."""
    assert [(w.code, w.vendor, w.flags) for w in wire] == [(a.code, a.vendor, a.flags) for a in ours], where
    for w, a in zip(wire, ours, strict=True):
        at = f"{where}/{a.name}"
        assert w.name == a.name, (at, w.name)  # tshark knows every AVP we use, by the same name
        if a.children is not None:
            assert w.children is not None, at
            assert_avps_equal(w.children, a.children, at)
            continue
        assert w.children is None and w.raw == a.data, (at, w.raw, a.data)
        kind = DICTIONARY[(a.code, a.vendor)][1]
        if kind in _NUMBERS:
            assert w.show == str(a.value()), (at, w.show)
        elif kind in (Type.UTF8, Type.IDENTITY):
            assert w.show == a.as_str(), (at, w.show)
        elif kind is Type.ADDRESS:
            assert w.ipv4 == a.as_address(), (at, w.ipv4)


def assert_same_message(wire: WireMsg, ours: Message) -> None:
    header = (ours.code, ours.flags, ours.app, ours.hop_by_hop, ours.end_to_end)
    assert (wire.code, wire.flags, wire.app, wire.hop_by_hop, wire.end_to_end) == header, (wire, ours)
    assert_avps_equal(wire.avps, ours.avps, f"frame {wire.frame}")


def assert_header_flags(msg: WireMsg) -> None:
    """R on requests only, P on credit control only (RFC 6733 §3: clear on CER, DWR, DPR), no E, no T."""
    proxiable = msg.code == Cmd.CREDIT_CONTROL
    assert bool(msg.flags & FLAG_P) is proxiable, msg
    assert not msg.flags & (FLAG_E | FLAG_T), msg
    assert msg.app == (APP_CREDIT_CONTROL if proxiable else APP_COMMON), msg


# --- 1. our traffic as tshark sees it --------------------------------------------------------------------


@pytest.mark.timeout(40)
async def test_gy_session_on_the_wire_as_tshark_dissects_it(
    data_dir: Path, tmp_path: Path, pytestconfig: pytest.Config, reaper: list[External]
) -> None:
    require_tshark(pytestconfig)
    sid = "pgw.test.local;wire;1"
    # (request, CC-Request-Type, CC-Request-Number, CC-Time requested, CC-Time used), then the event
    session = [
        (ccr(sid, 1, 0, time_requested=120), 1, 0, 120, None),
        (ccr(sid, 2, 1, time_requested=60, time_used=100), 2, 1, 60, 100),
        (ccr(sid, 2, 2, time_requested=60, time_used=50), 2, 2, 60, 50),
        (ccr(sid, 3, 3, time_requested=None, time_used=30), 3, 3, None, 30),
    ]
    event = sms_event("pgw.test.local;wire;sms")
    exchanges: list[tuple[Message, Message]] = []
    dwr = Message(
        Cmd.DEVICE_WATCHDOG,
        FLAG_R,
        APP_COMMON,
        avps=[*CLIENT.identity(), Avp.u32(Code.ORIGIN_STATE_ID, CLIENT.origin_state_id)],
    )
    async with running_stack(data_dir) as stack:
        port = stack.dgw_port
        capture = Capture(tmp_path / "gy.pcapng", [port])
        reaper.append(capture)
        try:
            await capture.begin(pytestconfig)
            peer = await connect("127.0.0.1", port, CLIENT)  # CER/CEA
            try:
                for request, *_ in session:
                    exchanges.append((request, await peer.request(request)))
                exchanges.append((event, await peer.request(event)))
                dwa = await peer.request(dwr)
            finally:
                await peer.disconnect()  # DPR/DPA
        finally:
            await capture.end("diameter-wire-gy.pcapng")
        capture.check()
        assert stack.gateway is not None and stack.gateway.stats.ccr == 5

    # what our side saw, first: every answer a success
    assert [answer.result_code for _, answer in exchanges] == [Result.SUCCESS] * 5
    assert dwa.result_code == Result.SUCCESS

    wire = await dissect(capture.pcap, [port])
    assert_clean(wire)
    counts = Counter((m.code, m.is_request) for m in wire.messages)
    assert counts == {
        (257, True): 1,
        (257, False): 1,
        (272, True): 5,
        (272, False): 5,
        (280, True): 1,
        (280, False): 1,
        (282, True): 1,
        (282, False): 1,
    }
    assert {m.stream for m in wire.messages} == {0}  # one TCP connection
    for msg in wire.messages:
        assert_header_flags(msg)
        # the client asks, the DGW answers: requests go to the DGW's port, answers come from it
        assert (msg.dst_port if msg.is_request else msg.src_port) == port, msg
    pairs = [(r, wire.answer_to(r)) for r in wire.messages if r.is_request]
    assert [r.code for r, _ in pairs] == [257, 272, 272, 272, 272, 272, 280, 282]

    # CER/CEA
    cer, cea = pairs[0]
    assert cer.one("Origin-Host") == "pgw.test.local" and cer.one("Origin-Realm") == "test.local"
    assert cer.all("Auth-Application-Id") == ["4"] and cer.avp("Host-IP-Address").ipv4 == "127.0.0.1"
    assert cea.one("Result-Code") == "2001"
    assert (cea.one("Origin-Host"), cea.one("Origin-Realm")) == (DGW_HOST, DGW_REALM)
    assert cea.all("Auth-Application-Id") == ["4"] and cea.one("Product-Name") == "CellCelly"
    assert cea.all("Supported-Vendor-Id") == [str(VENDOR_3GPP)]
    assert cea.avp("Host-IP-Address").ipv4 == "127.0.0.1"

    # the credit-control session and the event: tshark decodes exactly what we sent and read
    ccx = pairs[1:6]
    for (request, answer), (wire_request, wire_answer) in zip(exchanges, ccx, strict=True):
        assert_same_message(wire_request, request)
        assert_same_message(wire_answer, answer)
    for (wire_request, wire_answer), (_, kind, number, requested, used) in zip(ccx, session, strict=False):
        assert wire_request.one("Session-Id") == sid and wire_answer.one("Session-Id") == sid
        assert wire_request.one("CC-Request-Type") == str(kind) == wire_answer.one("CC-Request-Type")
        assert wire_request.one("CC-Request-Number") == str(number) == wire_answer.one("CC-Request-Number")
        assert wire_request.one("Auth-Application-Id") == "4" == wire_answer.one("Auth-Application-Id")
        assert wire_request.one("Rating-Group") == "1" == wire_answer.one("Rating-Group")
        assert wire_request.one("Destination-Realm") == DGW_REALM
        assert wire_request.one("Subscription-Id-Data") == "90" + DEMO.msisdn
        assert wire_request.one("Called-Party-Address") == "tel:+905551112233"
        # CC-Time: requested (RSU) then used (USU) in the CCR; granted (GSU) in the CCA
        assert wire_request.all("CC-Time") == [str(t) for t in (requested, used) if t is not None]
        assert wire_answer.all("Result-Code") == ["2001", "2001"]  # the command's and the MSCC's
        assert (wire_answer.one("Origin-Host"), wire_answer.one("Origin-Realm")) == (DGW_HOST, DGW_REALM)
        # a grant (CC-Time) with its Validity-Time on CCA-I/U; none on the CCA-T
        assert wire_answer.all("CC-Time") == ([str(requested)] if requested else [])
        validity = wire_answer.all("Validity-Time")
        assert (len(validity) == 1 and int(validity[0]) > 0) if kind != 3 else validity == [], validity
    wire_event, wire_event_answer = ccx[4]
    assert wire_event.one("CC-Request-Type") == "4" and wire_event.one("CC-Request-Number") == "0"
    assert wire_event.one("Service-Context-Id") == CONTEXT_SMS and wire_event.one("Rating-Group") == "2"
    assert wire_event.one("CC-Service-Specific-Units") == "1"
    assert wire_event.one("Address-Data") == "4915112345678"
    assert wire_event_answer.one("CC-Request-Type") == "4" and wire_event_answer.one("Rating-Group") == "2"
    assert wire_event_answer.all("Result-Code") == ["2001", "2001"]
    assert wire_event_answer.one("Origin-Host") == DGW_HOST

    # DWR/DWA (sent by us), DPR/DPA (PeerConnection.disconnect)
    wire_dwr, wire_dwa = pairs[6]
    assert_same_message(wire_dwr, dwr)
    assert_same_message(wire_dwa, dwa)
    assert wire_dwa.one("Result-Code") == "2001" and wire_dwa.one("Origin-Host") == DGW_HOST
    dpr, dpa = pairs[7]
    assert dpr.one("Origin-Host") == "pgw.test.local" and dpr.one("Disconnect-Cause") == "0"  # REBOOTING
    assert dpa.one("Result-Code") == "2001" and dpa.one("Origin-Host") == DGW_HOST


# --- 2. freeDiameter as a peer of the DGW -----------------------------------------------------------------


def _open_from(server: DgwServer, host: str) -> PeerConnection | None:
    return next((c for c in server.connections if c.state is State.OPEN and c.remote_host == host), None)


def _state(conn: PeerConnection) -> State:
    return conn.state


def _exchanges(wire: Dissection, stream: int, dgw_port: int) -> list[tuple[str, int, WireMsg, WireMsg]]:
    """(who asked: "dgw" or "fd", command, request, answer) on one connection, in order; every
    request answered with 2001 by the other side."""
    found = []
    for request in wire.messages:
        if request.stream != stream or not request.is_request:
            continue
        who = {DGW_HOST: "dgw", FD_HOST: "fd"}[request.one("Origin-Host")]
        assert (request.src_port == dgw_port) is (who == "dgw"), request
        answer = wire.answer_to(request)
        assert answer.top("Result-Code") == "2001", answer
        assert answer.one("Origin-Host") == (FD_HOST if who == "dgw" else DGW_HOST), answer
        found.append((who, request.code, request, answer))
    return found


@pytest.mark.timeout(50)
async def test_freediameter_as_a_peer_of_the_dgw(
    data_dir: Path, tmp_path: Path, pytestconfig: pytest.Config, reaper: list[External]
) -> None:
    require_freediameter(pytestconfig)
    async with running_stack(data_dir, dgw_watchdog_seconds=1) as stack:
        assert stack.dgw is not None and stack.gateway is not None
        dgw, port = stack.dgw, stack.dgw_port
        capture = Capture(tmp_path / "fd-peer.pcapng", [port])
        fd = FreeDiameter(tmp_path, port)
        reaper += [capture, fd]
        second: DgwServer | None = None

        def told() -> str:
            return f"freeDiameter's log ends:\n{fd.text()[-4000:]}"

        try:
            await capture.begin(pytestconfig)
            await fd.begin()
            # CER/CEA: freeDiameter connects to the DGW; both sides call the connection open
            await until(lambda: _open_from(dgw, FD_HOST) is not None, 10, "freeDiameter's CER", told)
            first = _open_from(dgw, FD_HOST)
            assert first is not None and first.remote_realm == FD_REALM
            await until(lambda: fd.open_to(DGW_HOST) == 1, 5, "freeDiameter to call the DGW open", told)

            # phase 1, our watchdog (Tw 1 s): the DGW sends DWRs, freeDiameter answers each. Its own
            # Tw restarts on every message it receives, so it sends none meanwhile.
            await until(lambda: first.stats["answers"] >= 3, 10, "three DWAs from freeDiameter", told)
            assert first.state is State.OPEN and first.stats["errors"] == 0

            # we stop: DPR from the DGW, DPA from freeDiameter, then the connection closes
            await dgw.stop()
            assert first.closed.done() and first not in dgw.connections
            await until(
                lambda: f"Peer '{DGW_HOST}' sent a DPR" in fd.text(), 5, "freeDiameter to get the DPR", told
            )

            # phase 2, freeDiameter's watchdog: it reconnects (after Tc 1 s, +/- 2 s) to a DGW listener
            # on the same port whose own watchdog (60 s) keeps quiet, and sends a DWR after its Tw
            second = DgwServer(
                stack.gateway, dataclasses.replace(dgw.local, watchdog_interval=60), allowed=dgw.allowed
            )
            await second.start("127.0.0.1", port)
            listener = second
            await until(
                lambda: _open_from(listener, FD_HOST) is not None, 12, "freeDiameter to reconnect", told
            )
            again = _open_from(listener, FD_HOST)
            assert again is not None
            # its CER, then its first DWR (Tw 6 s: 4..8 s after the last message it received)
            await until(lambda: again.stats["requests"] >= 2, 15, "a DWR from freeDiameter", told)
            assert _state(again) is State.OPEN and again.stats["errors"] == 0

            # freeDiameterd stops on SIGTERM: DPR to us, our DPA, and the connection closes cleanly
            status = await fd.stop(signal.SIGTERM, 20)
            await asyncio.wait_for(asyncio.shield(again.closed), 5)
            assert again not in listener.connections and _state(again) is State.CLOSED
            assert again.stats["errors"] == 0 and again.stats["requests"] >= 3  # CER, DWR(s), DPR
            assert status == 0, fd.text()[-3000:]
        finally:
            fd.kill()
            keep(fd.log, "diameter-wire-freediameter-peer.log")
            if second is not None:
                await second.stop()
            await capture.end("diameter-wire-freediameter-peer.pcapng")
        capture.check()

    assert fd.errors() == []
    assert fd.open_to(DGW_HOST) == 2  # the first connection, and the one after our DPR
    wire = await dissect(capture.pcap, [port])
    assert_clean(wire)  # no malformed packet, no expert warning (a TCP RST would be one)
    assert {m.stream for m in wire.messages} == {0, 1}
    for msg in wire.messages:
        assert_header_flags(msg)

    # connection 1: freeDiameter's CER; our DWRs every ~1 s, each answered; our DPR, its DPA
    one = _exchanges(wire, 0, port)
    assert [(who, code) for who, code, *_ in one[:1] + one[-1:]] == [("fd", 257), ("dgw", 282)]
    _, _, cer, cea = one[0]
    assert cer.one("Origin-Realm") == FD_REALM
    assert str(APP_RELAY) in cer.all("Auth-Application-Id") + cer.all("Acct-Application-Id")
    assert cea.all("Auth-Application-Id") == ["4"] and cea.one("Origin-Realm") == DGW_REALM
    ours = [(who, code) for who, code, *_ in one[1:-1]]
    assert len(ours) >= 3 and set(ours) == {("dgw", 280)}, ours
    for _, _, dwr, dwa in one[1:-1]:
        assert dwr.one("Origin-State-Id") != "" and dwa.one("Origin-Realm") == FD_REALM
    assert one[-1][2].one("Disconnect-Cause") == "0"  # REBOOTING: the peer may reconnect, and does

    # connection 2: its CER again; its DWR(s), answered by us; its DPR on SIGTERM, our DPA
    two = _exchanges(wire, 1, port)
    assert [(who, code) for who, code, *_ in two[:1] + two[-1:]] == [("fd", 257), ("fd", 282)]
    theirs = [(who, code) for who, code, *_ in two[1:-1]]
    assert len(theirs) >= 1 and set(theirs) == {("fd", 280)}, theirs
    for _, _, dwr, dwa in two[1:-1]:
        assert dwr.one("Origin-Realm") == FD_REALM and dwa.one("Origin-Realm") == DGW_REALM
        assert dwa.one("Origin-State-Id") == str(dgw.local.origin_state_id)
    assert two[-1][2].one("Disconnect-Cause") in {"0", "1", "2"}

    # and freeDiameter's own account of the same, from its message dumps
    seen = Counter(fd.dumps())
    assert seen == {
        ("SND", DGW_HOST, "Capabilities-Exchange-Request"): 2,
        ("RCV", DGW_HOST, "Capabilities-Exchange-Answer"): 2,
        ("RCV", DGW_HOST, "Device-Watchdog-Request"): len(ours),
        ("SND", DGW_HOST, "Device-Watchdog-Answer"): len(ours),
        ("SND", DGW_HOST, "Device-Watchdog-Request"): len(theirs),
        ("RCV", DGW_HOST, "Device-Watchdog-Answer"): len(theirs),
        ("RCV", DGW_HOST, "Disconnect-Peer-Request"): 1,
        ("SND", DGW_HOST, "Disconnect-Peer-Answer"): 1,
        ("SND", DGW_HOST, "Disconnect-Peer-Request"): 1,
        ("RCV", DGW_HOST, "Disconnect-Peer-Answer"): 1,
    }


# --- 3. freeDiameter as a relay between a Gy client and the DGW --------------------------------------------


@pytest.mark.timeout(40)
async def test_freediameter_relays_credit_control_to_the_dgw(
    data_dir: Path, tmp_path: Path, pytestconfig: pytest.Config, reaper: list[External]
) -> None:
    require_freediameter(pytestconfig)
    sid = "pgw.test.local;relay;1"
    # (request, CC-Time granted)
    session = [
        (ccr(sid, 1, 0, time_requested=90), 90),
        (ccr(sid, 2, 1, time_requested=60, time_used=90), 60),
        (ccr(sid, 3, 2, time_requested=None, time_used=20), None),
    ]
    answers: list[Message] = []
    async with running_stack(data_dir) as stack:
        assert stack.dgw is not None and stack.gateway is not None
        dgw, dgw_port = stack.dgw, stack.dgw_port
        fd = FreeDiameter(tmp_path, dgw_port, accept=(CLIENT.origin_host,), route_realm=DGW_REALM)
        capture = Capture(tmp_path / "fd-relay.pcapng", [fd.port, dgw_port])
        reaper += [capture, fd]
        try:
            await capture.begin(pytestconfig)
            await fd.begin()
            await until(lambda: _open_from(dgw, FD_HOST) is not None, 10, "freeDiameter's CER")
            await until(lambda: fd.open_to(DGW_HOST) == 1, 5, "freeDiameter to call the DGW open")
            # our Gy client talks to freeDiameter only (advertising Auth-Application-Id 4)
            client = await connect("127.0.0.1", fd.port, CLIENT)
            try:
                assert (client.remote_host, client.remote_realm) == (FD_HOST, FD_REALM)
                for request, _ in session:
                    answers.append(await client.request(request))
            finally:
                await client.disconnect()
            assert stack.gateway.stats.ccr == 3
            relay = _open_from(dgw, FD_HOST)  # the CCRs came over freeDiameter's connection
            assert relay is not None and relay.stats["requests"] >= 4 and relay.stats["errors"] == 0
            status = await fd.stop(signal.SIGTERM, 20)
            assert status == 0, fd.text()[-3000:]
        finally:
            fd.kill()
            keep(fd.log, "diameter-wire-freediameter-relay.log")
            await capture.end("diameter-wire-freediameter-relay.pcapng")
        capture.check()

    # the CCAs came back through freeDiameter: the DGW's, plus the Route-Record freeDiameter appends
    for (request, granted), answer in zip(session, answers, strict=True):
        assert answer.result_code == Result.SUCCESS and not answer.is_error, answer
        assert answer.session_id == sid and answer.hop_by_hop == request.hop_by_hop
        assert answer.end_to_end == request.end_to_end
        assert answer.find(Code.ORIGIN_HOST).as_str() == DGW_HOST  # type: ignore[union-attr]
        number = answer.find(Code.CC_REQUEST_NUMBER)
        assert number is not None and number.as_u32() == request.find(Code.CC_REQUEST_NUMBER).as_u32()  # type: ignore[union-attr]
        mscc = answer.find(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
        assert mscc is not None and mscc.find(Code.RESULT_CODE).as_u32() == Result.SUCCESS  # type: ignore[union-attr]
        gsu = mscc.find(Code.GRANTED_SERVICE_UNIT)
        assert (gsu.find(Code.CC_TIME).as_u32() if gsu else None) == granted  # type: ignore[union-attr]
        assert [a.as_str() for a in answer.find_all(Code.ROUTE_RECORD)] == [DGW_HOST]

    # freeDiameter parsed each one with its dictionary and passed it on
    assert fd.errors() == []
    relayed = [dump for dump in fd.dumps() if dump[2].startswith("Credit-Control")]
    each = [
        ("RCV", CLIENT.origin_host, "Credit-Control-Request"),
        ("SND", DGW_HOST, "Credit-Control-Request"),
        ("RCV", DGW_HOST, "Credit-Control-Answer"),
        ("SND", CLIENT.origin_host, "Credit-Control-Answer"),
    ]
    assert relayed == each * 3

    wire = await dissect(capture.pcap, [fd.port, dgw_port])
    assert_clean(wire)
    for msg in wire.messages:
        assert_header_flags(msg)
    client_leg = [m for m in wire.messages if fd.port in (m.src_port, m.dst_port)]
    dgw_leg = [m for m in wire.messages if dgw_port in (m.src_port, m.dst_port)]
    for leg in (client_leg, dgw_leg):
        for msg in leg:
            if msg.is_request:
                assert wire.answer_to(msg).top("Result-Code") == "2001", msg
        # CER, the three CCRs, DPR (ours to freeDiameter; freeDiameter's to the DGW on SIGTERM), and
        # watchdogs only if the machine was slow enough for freeDiameter's Tw (4..8 s) to expire
        requests = [m.code for m in leg if m.is_request and m.code != Cmd.DEVICE_WATCHDOG]
        assert requests == [257, 272, 272, 272, 282], requests
    ccr_in = [m for m in client_leg if m.code == Cmd.CREDIT_CONTROL and m.is_request]
    ccr_out = [m for m in dgw_leg if m.code == Cmd.CREDIT_CONTROL and m.is_request]
    for (request, _), answer, leg_in, leg_out in zip(session, answers, ccr_in, ccr_out, strict=True):
        # client -> freeDiameter: our CCR as we encoded it; freeDiameter -> client: the CCA we read
        assert leg_in.dst_port == fd.port
        assert_same_message(leg_in, request)
        assert_same_message(wire.answer_to(leg_in), answer)
        # freeDiameter -> DGW: our CCR re-encoded identically, plus its Route-Record; the same
        # End-to-End identifier (RFC 6733 §3: agents must not change it), a Hop-by-Hop of its own
        assert leg_out.dst_port == dgw_port and leg_out.frame > leg_in.frame
        assert leg_out.end_to_end == request.end_to_end and leg_out.hop_by_hop != request.hop_by_hop
        assert_avps_equal(leg_out.avps[:-1], request.avps, f"relayed CCR, frame {leg_out.frame}")
        assert (leg_out.avps[-1].name, leg_out.avps[-1].show) == ("Route-Record", CLIENT.origin_host)
        # DGW -> freeDiameter: the CCA, which freeDiameter passed on unchanged but for Route-Record
        dgw_answer = wire.answer_to(leg_out)
        assert_avps_equal(dgw_answer.avps, answer.avps[:-1], f"the DGW's CCA, frame {dgw_answer.frame}")
        assert dgw_answer.all("Result-Code") == ["2001", "2001"] and dgw_answer.one("Origin-Host") == DGW_HOST
        assert dgw_answer.one("Session-Id") == sid
        assert dgw_answer.one("CC-Request-Number") == leg_out.one("CC-Request-Number")


# --- regressions: DGW defects the wire showed ------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_asr_reaches_a_client_behind_a_relay(
    data_dir: Path, tmp_path: Path, pytestconfig: pytest.Config, reaper: list[External]
) -> None:
    require_freediameter(pytestconfig)
    sid = "pgw.test.local;relay;asr"
    received: list[Message] = []

    on_server_request = answering(received)

    async with running_stack(data_dir) as stack:
        assert stack.dgw is not None and stack.gateway is not None
        dgw, gateway = stack.dgw, stack.gateway
        fd = FreeDiameter(tmp_path, stack.dgw_port, accept=(CLIENT.origin_host,), route_realm=DGW_REALM)
        reaper.append(fd)
        try:
            await fd.begin()
            await until(lambda: _open_from(dgw, FD_HOST) is not None, 10, "freeDiameter's CER")
            await until(lambda: fd.open_to(DGW_HOST) == 1, 5, "freeDiameter to call the DGW open")
            client = await connect("127.0.0.1", fd.port, CLIENT, on_server_request)
            try:
                assert (await client.request(ccr(sid, 1, 0))).result_code == Result.SUCCESS
                # the subscriber is suspended: the DGW sends ASR for the live session
                results = await gateway.abort(DEMO.msisdn)
            finally:
                await client.disconnect()
        finally:
            await fd.stop(signal.SIGTERM, 20)
            keep(fd.log, "diameter-wire-freediameter-asr.log")
    assert results == [(sid, Result.SUCCESS)]  # today: [(sid, 3007)], answered by freeDiameter itself
    assert [(m.code, m.session_id) for m in received] == [(Cmd.ABORT_SESSION, sid)]
    destination = received[0].find(Code.DESTINATION_HOST)
    assert destination is not None and destination.as_str() == CLIENT.origin_host


@pytest.mark.timeout(20)
async def test_answers_carry_the_requests_proxy_info(data_dir: Path) -> None:
    """A Diameter proxy in front of the DGW (a DRA, say) keeps its per-request state in Proxy-Info
    and needs it back in the answer."""
    proxy_info = [
        Avp.grouped(
            Code.PROXY_INFO,
            [Avp.utf8(Code.PROXY_HOST, "dra1.test.local"), Avp.octets(Code.PROXY_STATE, b"a1")],
        ),
        Avp.grouped(
            Code.PROXY_INFO,
            [Avp.utf8(Code.PROXY_HOST, "dra2.test.local"), Avp.octets(Code.PROXY_STATE, b"b2")],
        ),
    ]
    charged = ccr("pgw.test.local;proxied;1", 1, 0)  # answered by build_cca: 2001
    unknown = ccr("pgw.test.local;proxied;never", 2, 4)  # answered by build_cca: 5002
    missing = ccr("pgw.test.local;proxied;2", 1, 0)  # answered by error_answer: 5005
    missing.avps = [a for a in missing.avps if a.code != Code.CC_REQUEST_NUMBER]
    async with running_stack(data_dir) as stack:
        peer = await connect("127.0.0.1", stack.dgw_port, CLIENT)
        try:
            results = []
            for request in (charged, unknown, missing):
                request.avps += proxy_info
                answer = await peer.request(request)
                results.append((answer.result_code, [a.encode() for a in answer.find_all(Code.PROXY_INFO)]))
        finally:
            await peer.disconnect()
    assert [code for code, _ in results] == [Result.SUCCESS, Result.UNKNOWN_SESSION_ID, Result.MISSING_AVP]
    expected = [a.encode() for a in proxy_info]
    assert [echoed for _, echoed in results] == [expected] * 3
