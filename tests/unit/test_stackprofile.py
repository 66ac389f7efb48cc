"""The profile of one CCR (issue 16): py-spy's collapsed stacks to categories and µs per CCR, each
sample decided by its leaf-most categorised frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellcelly_dev import profile_ccr
from cellcelly_dev.stackprofile import (
    DECODE,
    ENCODE,
    ENGINE,
    LOGGING,
    LOOP,
    MAPPING,
    OTHER,
    STORE,
    WAITING,
    WIRE,
    category_of,
    mypyc_names,
    parse_frame,
    profile,
    python_frames,
    render,
)

pytestmark = pytest.mark.unit

ROOT = "<module> (cellcelly/cli.py:10);Runner.run (asyncio/runners.py:118)"
CODEC = "cellcelly/diameter/codec.py"
SYNCER = "EmbeddedBalanceStore._syncer (cellcelly/adapters/balance_embedded.py:250)"
# 125 samples, 25 of them waiting: py-spy's raw format (root first, the count last, qualified names)
STACKS = f"""\
{ROOT};PeerConnection._frame (cellcelly/diameter/peer.py:3);decode ({CODEC}:610);decode_avps ({CODEC}:460) 30
{ROOT};decode_avps ({CODEC}:470);Avp.__init__ ({CODEC}:265) 10
{ROOT};build_cca (cellcelly/dgw/gy.py:230);Avp.u32 ({CODEC}:279);Avp.__init__ ({CODEC}:265) 8
{ROOT};build_cca (cellcelly/dgw/gy.py:240) 7
{ROOT};WireServerProtocol.data_received (cellcelly/ocs/wire.py:1);charge (cellcelly/domain/charging.py:50) 15
{ROOT};charge (cellcelly/domain/charging.py:50);Logger.warning (logging/__init__.py:1500) 5
{ROOT};EmbeddedBalanceStore.transact (cellcelly/adapters/balance_embedded.py:130);__init__ (<string>:2) 10
{ROOT};_Connection._flush (cellcelly/dgw/ocs_client.py:140);Transport.write (asyncio/selector_events.py:1) 4
{ROOT};_Connection._flush (cellcelly/dgw/ocs_client.py:141) 3
{ROOT} 6
<module> (cellcelly/cli.py:10);main (somewhere/else.py:1) 2
Thread.run (threading.py:982);{SYNCER};Event.wait (threading.py:629);Condition.wait (threading.py:331) 25
not a stack line
"""


def test_each_sample_goes_to_its_leaf_most_categorised_frame() -> None:
    prof = profile(STACKS)
    assert prof.samples == 125
    assert prof.cpu_samples == 100
    assert prof.by_category == {
        DECODE: 40,  # an AVP's constructor is passed over: decode_avps called it
        ENCODE: 8,  # called from build_cca through Avp.u32: encoding
        MAPPING: 7,
        ENGINE: 15,  # the engine inside the wire server: the engine
        LOGGING: 5,  # logging inside the engine: logging
        STORE: 10,  # a dataclass __init__ (no category) counts for the store that called it
        WIRE: 3,
        LOOP: 4 + 6,  # the loop's own C code shows as asyncio's frame being the leaf
        OTHER: 2,
        WAITING: 25,  # a worker blocked in a timed wait uses no core, whatever py-spy thought
    }
    # shares of the CPU samples, the waits' of all
    assert prof.share(DECODE) == pytest.approx(0.40)
    assert prof.share(WAITING) == pytest.approx(0.20)
    assert category_of([("Thread.run", "threading.py")]) == LOOP
    assert category_of([("Message.answer.<locals>.<listcomp>", CODEC)]) == ENCODE


def test_self_samples_count_the_leaf_function() -> None:
    prof = profile(STACKS)
    assert prof.self_samples.most_common(2) == [
        ("decode_avps (cellcelly/diameter/codec.py)", 30),
        ("Avp.__init__ (cellcelly/diameter/codec.py)", 10 + 8),  # by function, whatever called it
    ]
    assert prof.self_samples["charge (cellcelly/domain/charging.py)"] == 15


def test_frames_with_and_without_line_numbers_and_full_paths() -> None:
    assert parse_frame("Gateway.__call__ (cellcelly/dgw/gateway.py:88)") == (
        "Gateway.__call__",
        "cellcelly/dgw/gateway.py",
    )
    assert parse_frame("wait_for (asyncio/tasks.py)") == ("wait_for", "asyncio/tasks.py")
    full = "/usr/lib/python3.11/asyncio/tasks.py"
    assert category_of([("x", "cellcelly/cli.py"), ("wait_for", full)]) == LOOP
    # a "/" boundary: pytest_asyncio is not asyncio, a codec.py elsewhere not the Diameter codec
    assert category_of([("f", "pytest_asyncio/plugin.py"), ("g", "other/diameter/codec.py")]) == OTHER


def test_render_gives_shares_and_microseconds_per_ccr() -> None:
    table = render(profile(STACKS), cpu_us_per_ccr=200.0, top=3)
    lines = table.splitlines()
    # largest category first, its µs per CCR its share of the process's 200 µs
    assert lines[2] == f"| {DECODE} | 40.0% | 80.0 |"
    assert f"| {ENGINE} | 15.0% | 30.0 |" in lines
    assert "| **all** (100 samples) | 100% | 200.0 |" in lines
    assert f"| *{WAITING}* | *20.0% of all 125* | |" in lines
    assert "| `decode_avps (cellcelly/diameter/codec.py)` | 30 | 30.0% | 60.0 |" in lines
    functions = [line for line in lines if line.startswith("| `")]
    assert len(functions) == 3
    assert not any("wait" in line for line in functions)  # waits are no function's CPU


MODULES = mypyc_names(
    ["cellcelly.codec", "cellcelly.diameter.codec", "cellcelly.dgw.gy", "cellcelly.adapters.balance_voltdb"]
    + ["cellcelly.domain.charging", "cellcelly.application.charging"]
)
NATIVE = "__native_cellcelly_compiled.c"
# a compiled build's stacks as `py-spy --native` records them: C helpers, libc and libuv among them
NATIVE_STACKS = f"""\
0x7f2d (libc.so.6);{ROOT};CPyPy_diameter___codec___decode ({NATIVE}:140101);\
CPyDef_diameter___codec___decode ({NATIVE}:139963);CPyTagged_DECREF (CPy.h:238);\
CPyDef_diameter___codec___decode_avps ({NATIVE}:134831);Py_DECREF (object.h:537) 30
0x7f2d (libc.so.6);{ROOT};CPyDef_gy___build_cca ({NATIVE}:1);\
CPyDef_diameter___codec___Avp___u32 ({NATIVE}:2) 8
0x7f2d (libc.so.6);{ROOT};CPyDef_gy___parse_ccr ({NATIVE}:1);\
CPyDef_domain___charging___ChargeRequest ({NATIVE}:2) 4
0x7f2d (libc.so.6);{ROOT};CPyDef_cellcelly___codec___answer_from_list ({NATIVE}:1) 2
0x7f2d (libc.so.6);{ROOT};uv__write (libuv/src/unix/stream.c:1);write (libc.so.6) 6
0x7f2d (libc.so.6);{ROOT};CPyDef_balance_voltdb___VoltBalanceStore____transact_held ({NATIVE}:9) 5
0x7f2d (libc.so.6);clone (libc.so.6) 3
0x7f2d (libc.so.6);{ROOT};uv__io_poll (libuv/src/unix/epoll.c:1);epoll_pwait (libc.so.6) 20
Thread.run (threading.py:982);_worker (concurrent/futures/thread.py:81);_queue_SimpleQueue_get (q.c:1);\
PyThread_acquire_lock_timed (libpython3.11.so.1.0);0x7fab (libc.so.6) 40
"""


def test_mypyc_names_a_module_by_its_shortest_unique_suffix() -> None:
    assert MODULES == {
        "cellcelly.codec": "cellcelly/codec.py",  # "codec" is also the Diameter codec's
        "diameter.codec": "cellcelly/diameter/codec.py",
        "gy": "cellcelly/dgw/gy.py",
        "balance_voltdb": "cellcelly/adapters/balance_voltdb.py",
        "domain.charging": "cellcelly/domain/charging.py",
        "application.charging": "cellcelly/application/charging.py",
    }


def test_a_compiled_builds_native_stacks_read_as_the_pure_trees() -> None:
    frames = [parse_frame(f) for f in NATIVE_STACKS.splitlines()[0].split(" 30")[0].split(";")]
    assert python_frames(frames, MODULES) == [
        ("<module>", "cellcelly/cli.py"),
        ("Runner.run", "asyncio/runners.py"),
        ("decode", CODEC),  # the wrapper and the native function: both the function
        ("decode", CODEC),
        ("decode_avps", CODEC),  # C helpers and libc dropped
    ]
    prof = profile(NATIVE_STACKS, MODULES)
    assert prof.samples == 115  # the stack with no Python on it is no sample
    # a domain class built by the mapping counts for the mapping, as its dataclass __init__ does;
    # the loop in epoll and a worker on its queue are waits (py-spy --native counts them)
    assert prof.by_category == {DECODE: 30, ENCODE: 8, LOOP: 6, STORE: 2 + 5, MAPPING: 4, WAITING: 20 + 40}
    assert prof.self_samples["ChargeRequest.__init__ (<string>)"] == 4
    assert prof.self_samples["decode_avps (cellcelly/diameter/codec.py)"] == 30
    assert prof.self_samples["Avp.u32 (cellcelly/diameter/codec.py)"] == 8  # classes in the name
    # a private method: the name's "____" is the separator then its underscore
    assert prof.self_samples["VoltBalanceStore._transact_held (cellcelly/adapters/balance_voltdb.py)"] == 5
    # without the build's modules the compiled frames are only C: nothing of ours is seen
    assert profile(NATIVE_STACKS).by_category[DECODE] == 0


def test_the_doc_keeps_what_is_above_the_marker_and_the_other_builds_run(tmp_path: Path) -> None:
    doc = tmp_path / "profile.md"
    pure, compiled = (f"## {profile_ccr.BUILDS[native]}, 2026-12-03 10:00 UTC\n" for native in (False, True))
    profile_ccr.write_doc(doc, pure + "first run\n")
    assert doc.read_text().startswith(profile_ccr.INTRO)
    doc.write_text(doc.read_text().replace("Where the CPU", "Hand-written. Where the CPU"))
    profile_ccr.write_doc(doc, compiled + "compiled run\n")
    profile_ccr.write_doc(doc, pure + "second run\n")
    text = doc.read_text()
    assert "Hand-written. Where the CPU" in text
    # the pure tree first (before), the compiled build after, each its own last run
    assert text.endswith(f"{profile_ccr.MARKER}\n\n{pure}second run\n\n{compiled}compiled run\n")
    assert "first run" not in text
