"""Where a process's CPU goes, from py-spy's collapsed stacks (`--format raw`): a pure function.

Each sample is put in one category by its leaf-most frame that belongs to one: a sample in
`logging` called from the charging engine counts as logging, one in the engine called from the
wire server as the engine. Frames of no category (the CLI, the event loop's callers) are passed
over, and a sample with no categorised frame at all is "other". A category's share of the samples
times the process's CPU µs per CCR gives its µs per CCR (the samples are py-spy's non-idle ones,
so the shares are shares of CPU time). Except one: a thread whose leaf is a blocking wait (a
worker's `Event.wait(timeout)`, a queue's get) is not using a core, yet on a loaded machine py-spy
sees it runnable, waiting for one, and counts it; those samples are shown as "waiting" and left out
of the CPU split.

A build compiled by mypyc (`make compile`) runs its functions as C, which py-spy sees only with
`--native`; `python_frames` then turns such a stack back into the one the pure tree would give
(each compiled function named as its Python one, in its module's file; C helpers, libuv and libc
dropped), so that both builds are split by the same rules.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DECODE = "Diameter decode"
ENCODE = "Diameter encode (AVPs and bytes of the answer)"
MAPPING = "CCR ↔ charging mapping (dgw/gy.py, diameter/ccr.py)"
PEER = "Diameter peer and gateway (peer.py, dgw/gateway.py, dgw/server.py)"
ENGINE = "charging engine (domain, application/charging.py, catalogue)"
STORE = "balance store (embedded store, its journal records)"
WIRE = "DGW ↔ OCS wire (ocs/wire.py, dgw/ocs_client.py)"
EVENTS = "events, outbox, relay, bus"
LOGGING = "logging"
LOOP = "asyncio/uvloop, threads and sockets"
OTHER = "other"
WAITING = "waiting in a blocking call (not CPU: left out of the split)"

# the codec's AVP-building calls (an answer's AVPs) and its byte encoding; the rest of it is decoding
_ENCODING = frozenset(
    {"encode", "u32", "u64", "i32", "i64", "utf8", "octets", "address", "time", "grouped", "answer"}
)
# the balance store's outbox side, which the relay drives
_OUTBOX = frozenset(
    {
        "outbox",
        "outbox_parts",
        "outbox_size",
        "ack",
        "_ack_upto",
        "_ack_exact",
        "_trim",
        "outbox_async",
        "outbox_parts_async",
        "outbox_size_async",
        "ack_async",
    }
)
_EVENT_FORMS = frozenset({"event_to_dict", "lifecycle_event", "event_from_dict", "event_from_fields"})


def _innermost(qualified: str) -> str:
    named = [part for part in qualified.split(".") if not part.startswith("<")]
    return named[-1] if named else qualified


@dataclass(frozen=True)
class Rule:
    """Frames of `path` (a file, or a package ending in "/", matched at a "/" boundary), of the
    given functions only when some are given (by the innermost name of py-spy's qualified one:
    `Avp.u32` is `u32`, `Message.answer.<locals>.<listcomp>` is `answer`), are of `category`;
    None: passed over, so that a helper both sides call (an AVP's constructor) counts for its
    caller."""

    category: str | None
    path: str
    functions: frozenset[str] = field(default_factory=frozenset)

    def matches(self, function: str, file: str) -> bool:
        if self.functions and _innermost(function) not in self.functions:
            return False
        return f"/{self.path}" in f"/{file}"


# the first rule that matches a frame decides it: the function-specific ones before their file's
RULES: tuple[Rule, ...] = (
    Rule(None, "cellcelly/diameter/codec.py", frozenset({"__init__", "__eq__", "__repr__", "mandatory"})),
    Rule(ENCODE, "cellcelly/diameter/codec.py", _ENCODING),
    Rule(DECODE, "cellcelly/diameter/codec.py"),
    Rule(DECODE, "cellcelly/diameter/constants.py"),
    Rule(DECODE, "cellcelly/dgw/ccr_reader.py"),  # the CCR read and mapped in one walk of its bytes
    Rule(DECODE, "cellcelly/diameter/avp_bytes.py"),
    Rule(DECODE, "cellcelly/diameter/cca_reader.py"),
    Rule(MAPPING, "cellcelly/dgw/gy.py"),
    Rule(MAPPING, "cellcelly/diameter/ccr.py"),
    Rule(PEER, "cellcelly/diameter/peer.py"),
    Rule(PEER, "cellcelly/dgw/gateway.py"),
    Rule(PEER, "cellcelly/dgw/server.py"),
    Rule(ENGINE, "cellcelly/domain/"),
    Rule(ENGINE, "cellcelly/application/charging.py"),
    Rule(ENGINE, "cellcelly/catalogue_store.py"),
    Rule(ENGINE, "cellcelly/catalogue/"),
    Rule(EVENTS, "cellcelly/adapters/balance_embedded.py", _OUTBOX),
    Rule(EVENTS, "cellcelly/codec.py", _EVENT_FORMS),
    Rule(EVENTS, "cellcelly/application/relay.py"),
    Rule(EVENTS, "cellcelly/adapters/bus_embedded.py"),
    Rule(EVENTS, "cellcelly/adapters/bus_kafka.py"),
    Rule(EVENTS, "cellcelly/ports/event_bus.py"),
    Rule(STORE, "cellcelly/adapters/balance_embedded.py"),
    Rule(STORE, "cellcelly/adapters/balance_voltdb.py"),
    Rule(STORE, "cellcelly/adapters/voltdb/"),
    Rule(STORE, "cellcelly/adapters/voltdb_wire.py"),
    Rule(STORE, "cellcelly/ports/balance_store.py"),
    Rule(STORE, "cellcelly/codec.py"),
    Rule(WIRE, "cellcelly/ocs/wire.py"),
    Rule(WIRE, "cellcelly/dgw/ocs_client.py"),
    Rule(LOGGING, "logging/"),
    Rule(LOGGING, "cellcelly/logs.py"),
    # only ever a leaf: a thread blocked in C below it
    Rule(WAITING, "threading.py", frozenset({"wait", "acquire", "join"})),
    Rule(WAITING, "queue.py", frozenset({"get"})),
    Rule(WAITING, "selectors.py", frozenset({"select"})),
    Rule(LOOP, "asyncio/"),
    Rule(LOOP, "uvloop/"),
    Rule(LOOP, "socket.py"),
    Rule(LOOP, "selectors.py"),
    Rule(LOOP, "ssl.py"),
    Rule(LOOP, "threading.py"),
    Rule(LOOP, "queue.py"),
    Rule(LOOP, "concurrent/futures/"),
)
CATEGORIES = (DECODE, ENCODE, MAPPING, PEER, ENGINE, STORE, WIRE, EVENTS, LOGGING, LOOP, OTHER, WAITING)

# "function (file:line)" or, with py-spy's --nolineno, "function (file)"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def parse_frame(text: str) -> tuple[str, str]:
    """(function, file) of one collapsed-stack frame; a frame of another shape is all function."""
    m = _FRAME.match(text.strip())
    return (m["function"], m["file"]) if m else (text.strip(), "")


# a mypyc function as `py-spy --native` names it: CPyDef_ (native) or CPyPy_ (its Python-callable
# wrapper), then its module's short name (`mypyc_names`) and its qualified name, "___" for each "."
_MYPYC = re.compile(r"^CPy(?:Def|Py)_(?P<name>\w+)$")


def mypyc_names(modules: Iterable[str]) -> dict[str, str]:
    """The compiled `modules` (dotted: "cellcelly.diameter.codec") by the short name mypyc gives
    each in its C names, the shortest dotted suffix no other of them has ("peer", "cellcelly.codec"
    beside "diameter.codec"), each to its file ("cellcelly/diameter/peer.py")."""
    full = sorted(set(modules))
    suffixes = Counter(".".join(m.split(".")[i:]) for m in full for i in range(m.count(".") + 1))
    names = {}
    for module in full:
        parts = module.split(".")
        short = next(
            (s for i in range(len(parts) - 1, -1, -1) if suffixes[s := ".".join(parts[i:])] == 1), module
        )
        names[short] = module.replace(".", "/") + ".py"
    return names


# C calls that block: in `--native` mode py-spy stops the process to sample it and then counts a
# thread blocked in one of these (the loop in epoll, a worker on its queue, a journal's fsync) as
# running, so the stack's C tail says which samples are waits
_C_WAITS = frozenset(
    {
        "epoll_wait",
        "epoll_pwait",
        "select",
        "poll",
        "PyThread_acquire_lock_timed",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "pthread_cond_clockwait",
        "sem_wait",
        "sem_timedwait",
        "sem_clockwait",
        "nanosleep",
        "clock_nanosleep",
        "fsync",
        "fdatasync",
    }
)


def waits_in_c(frames: list[tuple[str, str]]) -> bool:
    """Whether a `--native` stack's leaf-most C frames, below its last Python or compiled one,
    include a blocking call (`_C_WAITS`)."""
    for function, file in reversed(frames):
        if file.endswith(".py") or _MYPYC.match(function):
            return False
        if function in _C_WAITS:
            return True
    return False


def python_frames(frames: list[tuple[str, str]], compiled: Mapping[str, str]) -> list[tuple[str, str]]:
    """A `--native` stack as a Python one: a function of a compiled module (`compiled`, from
    `mypyc_names`) becomes (its qualified name, its module's file), a class called (a constructor;
    a dataclass's `__init__` in the pure tree) ("<class>.__init__", "<string>"), which no rule has; every
    other native frame (a file that is not Python source: C helpers, libuv, libc) is dropped, so
    that its time counts for the Python or compiled function that called it."""
    out = []
    for function, file in frames:
        m = _MYPYC.match(function)
        if m is not None:
            parts = m["name"].split("___")
            for cut in range(len(parts) - 1, 0, -1):  # the longest module name that is one
                source = compiled.get(".".join(parts[:cut]))
                if source is not None:
                    rest = parts[cut:]
                    if len(rest) == 1 and rest[0][:1].isupper():  # a class called, or freed
                        cls, _, freeing = rest[0].partition("_")
                        out.append((f"{cls}.__init__" if not freeing else rest[0], "<string>"))
                    elif rest[0].startswith("__mypyc"):  # its set-up ("__mypyc__Avp_setup"): passed over too
                        out.append((rest[0], "<string>"))
                    else:
                        out.append((".".join(rest), source))
                    break
        elif file.endswith(".py"):
            out.append((function, file))
    return out


def category_of(frames: list[tuple[str, str]]) -> str:
    """The category of a sample whose frames run from the root to the leaf."""
    for function, file in reversed(frames):
        for rule in RULES:
            if rule.matches(function, file):
                if rule.category is not None:
                    return rule.category
                break  # passed over: its caller decides
    return OTHER


@dataclass
class Profile:
    """One process's samples: how many, a count per category, and a count per leaf function (of
    the CPU samples)."""

    samples: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    self_samples: Counter[str] = field(default_factory=Counter)

    @property
    def cpu_samples(self) -> int:
        """The samples that stand for CPU time: all but the waiting ones."""
        return self.samples - self.by_category[WAITING]

    def share(self, category: str) -> float:
        """Of the CPU samples (of all the samples for "waiting")."""
        whole = self.samples if category == WAITING else self.cpu_samples
        return self.by_category[category] / whole if whole else 0.0


def profile(collapsed: str, compiled: Mapping[str, str] | None = None) -> Profile:
    """The Profile of py-spy's collapsed stacks: a line a distinct stack, its frames separated by
    ";" from the root to the leaf, then a space and its number of samples. Other lines are skipped.
    `compiled`: the stacks are `--native` ones of a build that compiled these (`python_frames`)."""
    result = Profile()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [parse_frame(f) for f in stack.split(";")]
        if compiled is not None:
            waiting = waits_in_c(frames)
            frames = python_frames(frames, compiled)
            if not frames:
                continue  # only C (py-spy's view of a thread with no Python on it)
            category = WAITING if waiting else category_of(frames)
        else:
            category = category_of(frames)
        result.samples += n
        result.by_category[category] += n
        if category != WAITING:
            function, file = frames[-1]
            result.self_samples[f"{function} ({file})" if file else function] += n
    return result


def render(prof: Profile, cpu_us_per_ccr: float | None, top: int = 15) -> str:
    """Markdown: each category's share of the CPU samples and µs per CCR (largest first), the
    waiting samples' share of all, then the `top` functions by samples in the function itself (the
    stack's leaf), waits left out."""

    def us(share: float) -> str:
        return f"{share * cpu_us_per_ccr:.1f}" if cpu_us_per_ccr is not None else "—"

    lines = ["| category | share of CPU samples | µs per CCR |", "|---|---:|---:|"]
    ranked = sorted(CATEGORIES[:-1], key=lambda c: (-prof.by_category[c], CATEGORIES.index(c)))
    for category in ranked:
        if prof.by_category[category]:
            share = prof.share(category)
            lines.append(f"| {category} | {share:.1%} | {us(share)} |")
    total = f"{cpu_us_per_ccr:.1f}" if cpu_us_per_ccr is not None else "—"
    lines.append(f"| **all** ({prof.cpu_samples} samples) | 100% | {total} |")
    if prof.by_category[WAITING]:
        lines.append(f"| *{WAITING}* | *{prof.share(WAITING):.1%} of all {prof.samples}* | |")
    lines += ["", f"Top {top} functions by self samples:", ""]
    lines += ["| function (file) | self samples | share | µs per CCR |", "|---|---:|---:|---:|"]
    for function, n in prof.self_samples.most_common(top):
        share = n / prof.cpu_samples
        shown = function.replace("|", "\\|")  # a table cell
        lines.append(f"| `{shown}` | {n} | {share:.1%} | {us(share)} |")
    return "\n".join(lines)
