"""SIP messages (RFC 3261) and SDP (RFC 4566), only as much as a user agent server needs.

The parser never raises anything but `SipError`: a datagram that is not even a SIP start line is
`NotSip` (dropped, since there is nobody to answer), anything else that is malformed comes back
as a `SipMessage` with `.error` set, so the server can still answer 400 with the headers it found.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from cellcelly.errors import ProtocolError

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE = 65_535
# RFC 3261 7.3.3 compact forms
COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Record-Route",
        "Route",
        "Supported",
        "Require",
        "Allow",
        "Accept",
        "User-Agent",
        "Server",
        "P-Asserted-Identity",
        "Warning",
        "Retry-After",
        "Unsupported",
        "Subject",
        "Content-Encoding",
        "WWW-Authenticate",
    )
}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+) (\S+) (SIP/\d\.\d)$")
_STATUS_LINE = re.compile(r"^(SIP/\d\.\d) (\d{3}) ?(.*)$")
MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
}


class SipError(ProtocolError, ValueError):
    pass


class NotSip(SipError):
    """Not a SIP message at all: no start line to answer."""


def canonical(name: str) -> str:
    lower = name.lower()
    if lower in COMPACT:
        return COMPACT[lower]
    return _CANONICAL.get(lower, "-".join(part.capitalize() for part in lower.split("-")))


@dataclass
class SipMessage:
    method: str | None = None  # requests
    uri: str = ""
    status: int = 0  # responses
    reason: str = ""
    version: str = SIP_VERSION
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None  # why this request is malformed (answer 400), None when it is fine

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        name = canonical(name)
        return next((v for n, v in self.headers if n == name), None)

    def all(self, name: str) -> list[str]:
        """Every value, comma-separated lists split (Via, Route, Record-Route hold several)."""
        name = canonical(name)
        return [item for n, v in self.headers if n == name for item in split_commas(v)]

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("CSeq") or "").partition(" ")
        return int(number), method.strip()

    @property
    def branch(self) -> str:
        vias = self.all("Via")
        return header_params(vias[0]).get("branch", "") if vias else ""

    def to_bytes(self) -> bytes:
        start = (
            f"{self.method} {self.uri} {self.version}"
            if self.is_request
            else f"{self.version} {self.status} {self.reason}"
        )
        lines = [start]
        lines += [f"{n}: {v}" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def split_commas(value: str) -> list[str]:
    """Split a header value on commas outside quotes and <>."""
    items, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and not depth:
            items.append(value[start:i].strip())
            start = i + 1
    items.append(value[start:].strip())
    return [item for item in items if item]


def parse(data: bytes) -> SipMessage:
    """Parse one datagram. Raises NotSip when there is no SIP start line."""
    if len(data) > MAX_MESSAGE:
        raise NotSip("datagram too large")
    data = data.lstrip(b"\r\n")  # RFC 3261 7.5: empty lines before the start line are ignored
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    text: str | None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    first_line = text.split("\n", 1)[0] if text is not None else head.split(b"\n", 1)[0].decode("latin-1")
    first = first_line.rstrip("\r")
    msg = SipMessage()
    if request := _REQUEST_LINE.match(first):
        msg.method, msg.uri, msg.version = request.groups()
    elif status := _STATUS_LINE.match(first):
        msg.version, code, msg.reason = status.groups()
        msg.status = int(code)
        if not 100 <= msg.status <= 699:
            raise NotSip(f"status code {msg.status}")
    else:
        raise NotSip(f"not a SIP start line: {first[:60]!r}")
    if text is None:
        msg.error = "headers are not UTF-8"
        return msg
    if msg.version != SIP_VERSION:
        msg.error = f"version {msg.version}"
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n")[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()  # folded header (RFC 3261 7.3.1)
        elif line:
            lines.append(line)
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            msg.error = msg.error or f"bad header line {line[:40]!r}"
            continue
        msg.headers.append((canonical(name), value.strip()))
    length_text = msg.get("Content-Length")
    if length_text is not None:
        if not length_text.isdigit():
            msg.error = msg.error or "bad Content-Length"
        elif int(length_text) > len(body):
            msg.error = msg.error or "body shorter than Content-Length"
        else:
            body = body[: int(length_text)]
    msg.body = body
    if msg.error is None:
        msg.error = _check(msg)
    return msg


def _check(msg: SipMessage) -> str | None:
    missing = [name for name in MANDATORY if msg.get(name) is None]
    if missing:
        return "missing " + ", ".join(missing)
    number, _, method = (msg.get("CSeq") or "").partition(" ")
    if not number.isdigit() or int(number) >= 2**31 or not _TOKEN.match(method.strip() or "?"):
        return "bad CSeq"
    if msg.is_request and method.strip() != msg.method:
        return "CSeq method differs from the request's"
    if not msg.all("Via")[0].upper().startswith("SIP/2.0/"):
        return "bad Via"
    try:
        name_addr(msg.get("From") or "")
        name_addr(msg.get("To") or "")
    except SipError as exc:
        return str(exc)
    forwards = msg.get("Max-Forwards")
    if forwards is not None and not forwards.isdigit():
        return "bad Max-Forwards"
    if msg.is_request and not re.match(r"^(sips?|tel):\S+$", msg.uri, re.IGNORECASE):
        return "unsupported Request-URI"
    return None


def header_params(value: str) -> dict[str, str]:
    """The ;name=value parameters after a header's main value (a Via, or a name-addr's tag)."""
    if ">" in value:
        value = value.rsplit(">", 1)[1]
    params: dict[str, str] = {}
    for item in value.split(";")[1:]:
        name, _, val = item.partition("=")
        params[name.strip().lower()] = val.strip()
    return params


def name_addr(value: str) -> tuple[str, dict[str, str]]:
    """(URI, header parameters) of a From/To/Contact/Route value, with or without <>."""
    value = value.strip()
    if "<" in value:
        start, end = value.find("<"), value.find(">")
        if end < start:
            raise SipError(f"unbalanced <> in {value[:40]!r}")
        uri = value[start + 1 : end].strip()
    else:
        uri = value.split(";", 1)[0].strip()
    if not re.match(r"^(sips?|tel):\S+$", uri, re.IGNORECASE):
        raise SipError(f"not a SIP URI: {uri[:40]!r}")
    return uri, header_params(value)


def uri_user(uri: str) -> str:
    """The user part of sip:user@host or the number of tel:number, without visual separators."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() == "tel":
        user = rest.split(";", 1)[0]
    else:
        user = rest.split("@", 1)[0] if "@" in rest else ""
        user = user.split(";", 1)[0].split(":", 1)[0]  # user params, password
    return re.sub(r"[-.() ]", "", user)


def uri_hostport(uri: str, default_port: int = 5060) -> tuple[str, int]:
    rest = uri.partition(":")[2]
    hostport = rest.split("@", 1)[-1].split(";", 1)[0].split("?", 1)[0]
    if hostport.startswith("["):  # IPv6 reference
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    return host, int(port) if port.isdigit() else default_port


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)  # RFC 3261 magic cookie


def response(
    request: SipMessage,
    status: int,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    reason: str | None = None,
) -> SipMessage:
    """A response to `request` (RFC 3261 8.2.6): its Via, From, Call-ID and CSeq, To with our tag."""
    out = SipMessage(status=status, reason=reason or REASONS.get(status, "Unknown"))
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq") or (name == "Record-Route" and 100 < status < 300):
            out.headers.append((name, value))
        elif name == "To":
            if to_tag and "tag" not in header_params(value):
                value = f"{value};tag={to_tag}"
            out.headers.append((name, value))
    out.headers += headers or []
    out.body = body
    return out


# --- SDP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaOffer:
    address: str
    port: int
    payload_type: int | None  # the PCMU payload type the offer uses, None when it has no PCMU
    direction: str  # sendrecv, sendonly, recvonly, inactive


@dataclass
class _Media:
    kind: str
    port: int
    proto: str
    fmts: list[str]
    address: str | None = None
    direction: str | None = None
    rtpmap: dict[str, str] = field(default_factory=dict)


_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_PCMU = ("PCMU/8000", "PCMU/8000/1")


def parse_sdp(body: bytes) -> MediaOffer:
    """The first usable audio stream of an SDP offer or answer."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError("SDP is not UTF-8") from exc
    session_addr: str | None = None
    session_dir = "sendrecv"
    media: list[_Media] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        current = media[-1] if media else None
        if kind == "m":
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SipError(f"bad m= line {value[:40]!r}")
            media.append(_Media(parts[0], int(parts[1].split("/")[0]), parts[2], parts[3:]))
        elif kind == "c":
            parts = value.split()
            if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SipError(f"bad c= line {value[:40]!r}")
            address = parts[2].split("/")[0]
            if current is None:
                session_addr = address
            else:
                current.address = address
        elif kind == "a":
            if value in _DIRECTIONS:
                if current is None:
                    session_dir = value
                else:
                    current.direction = value
            elif value.startswith("rtpmap:") and current is not None:
                pt, _, encoding = value[7:].partition(" ")
                current.rtpmap[pt.strip()] = encoding.strip().upper()
    for m in media:
        if m.kind != "audio" or m.port == 0 or not m.proto.startswith("RTP/AVP"):
            continue
        where = m.address or session_addr
        if where is None:
            raise SipError("no c= address for the audio stream")
        pcmu = next(
            (
                int(fmt)
                for fmt in m.fmts
                if fmt.isdigit()
                and (m.rtpmap.get(fmt) in _PCMU or (fmt == "0" and m.rtpmap.get(fmt) is None))
            ),
            None,
        )
        return MediaOffer(where, m.port, pcmu, m.direction or session_dir)
    raise SipError("no audio stream")


def sdp_answer(address: str, port: int, payload_type: int, session_id: int, direction: str) -> bytes:
    """Our SDP: one PCMU/8000 stream, 20 ms frames."""
    family = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=CellCelly {session_id} {session_id} IN {family} {address}",
        "s=CellCelly IVR",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {payload_type}",
        f"a=rtpmap:{payload_type} PCMU/8000",
        "a=ptime:20",
        f"a={direction}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
