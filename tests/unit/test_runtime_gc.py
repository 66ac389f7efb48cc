"""`runtime.tune_gc`: young collections' survivors frozen; a full collection when memory grows.

Each check runs in a process of its own: the policy is the whole process's collector.
"""

from __future__ import annotations

import textwrap

import pytest

from cellcelly.runtime import FULL_FLOOR_BLOCKS, FullCollections
from cellcelly_testing import python_lines

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

SURVIVORS_FROZEN = """
import gc, weakref
from cellcelly.runtime import tune_gc
tune_gc()

class Node:
    def __init__(self): self.other = None

kept = [Node() for _ in range(5000)]  # outlive a young collection
alive = [Node() for _ in range(5000)]
junk = [[] for _ in range(20000)]  # net allocations: young collections happen
del junk
ids = {id(n) for n in kept}
walked = {id(o) for o in gc.get_objects()}  # every generation the collector walks
print("frozen" if not ids & walked else "walked")

# a cycle dropped before any collection saw it: the next young one frees it
a, b = Node(), Node()
a.other, b.other = b, a
gone = weakref.ref(a)
del a, b
junk = [[] for _ in range(20000)]
print("young cycle freed" if gone() is None else "young cycle kept")

# a cycle that outlived a young collection: frozen, freed only by the full collection
a, b = Node(), Node()
a.other, b.other = b, a
late = weakref.ref(a)
junk = [[] for _ in range(20000)]
del a, b, junk
junk = [[] for _ in range(20000)]
print("old cycle kept" if late() is not None else "old cycle freed")
from cellcelly.runtime import full_collection
found = full_collection()
print("full freed it" if late() is None and found >= 2 else f"full missed it ({found})")
print("thresholds", gc.get_threshold())
"""


def test_survivors_of_a_young_collection_are_frozen_and_a_full_collection_frees_their_cycles() -> None:
    assert python_lines(SURVIVORS_FROZEN) == [
        "frozen",
        "young cycle freed",
        "old cycle kept",
        "full freed it",
        "thresholds (2000, 20, 20)",
    ]


def test_threshold_zero_leaves_cpythons_collector_as_it_is() -> None:
    out = python_lines(SURVIVORS_FROZEN, CELLCELLY_GC_THRESHOLD="0")
    assert out[0] == "walked"
    assert out[2] == "old cycle freed"  # CPython's own generations found it


# the policy on, and a cycle that outlived young collections (so frozen), watched by `late`
OLD_CYCLE = textwrap.dedent(
    """
    import gc, threading, time, weakref
    from cellcelly.runtime import full_collection, tune_gc
    tune_gc()
    class Node:
        def __init__(self): self.other = None
    a, b = Node(), Node()
    a.other, b.other = b, a
    late = weakref.ref(a)
    junk = [[] for _ in range(20000)]
    del a, b, junk
    """
)


def test_a_full_collection_comes_when_live_objects_grow_and_not_while_they_stay() -> None:
    script = OLD_CYCLE + textwrap.dedent(
        """
    time.sleep(1.0)  # checked several times: no growth, no full collection
    print("kept" if late() is not None else "freed")
    grown = [[] for _ in range(2_200_000)]  # twice the floor of a million blocks, and more
    deadline = time.monotonic() + 10
    while late() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    print("freed" if late() is None else "kept")
    """
    )
    growing = {"CELLCELLY_GC_FULL_GROWTH": "2", "CELLCELLY_GC_CHECK_S": "0.2"}
    assert python_lines(script, **growing) == ["kept", "freed"]
    assert python_lines(script, **{**growing, "CELLCELLY_GC_FULL_GROWTH": "0"}) == ["kept", "kept"]


def test_without_young_collections_only_a_full_collection_frees_a_cycle() -> None:
    script = """
    import gc, weakref
    from cellcelly.runtime import full_collection, tune_gc
    tune_gc(young=False)
    class Node:
        def __init__(self): self.other = None
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    junk = [[] for _ in range(100000)]
    print("enabled" if gc.isenabled() else "disabled", "kept" if gone() is not None else "freed")
    full_collection()
    print("freed" if gone() is None else "kept")
    """
    assert python_lines(script) == ["disabled kept", "freed"]


def test_a_full_collection_is_made_even_while_another_threads_collection_is_under_way() -> None:
    # gc.collect() collects nothing while another thread's collection runs its callbacks (they let
    # the GIL go): the full collection from the watcher's thread must still happen, and the young
    # collection's freeze must not take back what it unfroze. CI once kept a cycle so.
    script = OLD_CYCLE + textwrap.dedent(
        """
    inside = threading.Event()
    def slow(phase, info):  # the main thread's young collection, paused in a callback
        if phase == "start" and info["generation"] == 0 and not inside.is_set():
            inside.set()
            time.sleep(0.3)
    gc.callbacks.insert(0, slow)
    found = []
    def full():
        inside.wait()
        found.append(full_collection())
    worker = threading.Thread(target=full)
    worker.start()
    junk = [[] for _ in range(5000)]  # a young collection: `slow` lets the worker in
    worker.join()
    gc.callbacks.remove(slow)
    print("freed" if late() is None and found[0] >= 2 else f"kept ({found})")
    """
    )
    assert python_lines(script) == ["freed"]


def test_a_full_collection_waits_for_a_quiet_moment_unless_memory_grew_past_the_force() -> None:
    policy = FullCollections(growth=4, force=16, quiet_cpu=0.25)
    policy.collected(2_000_000)
    assert not policy.due(7_000_000, 0.0)  # not grown enough
    assert policy.due(8_000_000, 0.1)  # grown and quiet
    assert not policy.due(8_000_000, 0.9)  # grown, but busy: a pause would stall its work
    assert not policy.due(31_000_000, 1.0)
    assert policy.due(32_000_000, 1.0)  # past the force: memory stays bounded
    policy.collected(100)
    assert policy.baseline == FULL_FLOOR_BLOCKS  # never below the floor
    never = FullCollections(growth=4, force=0, quiet_cpu=0.25)
    never.collected(2_000_000)
    assert not never.due(10**12, 1.0)


def test_under_load_the_full_collection_waits_and_comes_once_the_process_is_quiet() -> None:
    script = OLD_CYCLE + textwrap.dedent(
        """
    busy = threading.Event()
    busy.set()
    def spin():  # this process's own load: a core's worth
        while busy.is_set():
            sum(range(1000))
    threading.Thread(target=spin, daemon=True).start()
    grown = [[] for _ in range(2_200_000)]  # twice the floor of a million blocks, and more
    time.sleep(1.5)  # several checks, every one busy
    print("kept" if late() is not None else "freed")
    busy.clear()
    deadline = time.monotonic() + 10
    while late() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    print("freed" if late() is None else "kept")
    """
    )
    env = {"CELLCELLY_GC_FULL_GROWTH": "2", "CELLCELLY_GC_CHECK_S": "0.2"}  # no force: the default
    assert python_lines(script, **env) == ["kept", "freed"]
    # grown past the force, it comes under load too
    forced = {**env, "CELLCELLY_GC_FULL_FORCE": "2", "CELLCELLY_GC_FULL_GROWTH": "1.5"}
    assert python_lines(script, **forced) == ["freed", "freed"]
