"""`runtime.ask_for_slice`: the charging processes' short scheduler slice (Linux 6.12+, EEVDF).

Each check runs in a process of its own: a slice stays with the thread that asked, and its children.
"""

from __future__ import annotations

import platform

import pytest

from cellcelly.runtime import slices_supported
from cellcelly_testing import python_lines

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


# where the kernel has none, ask_for_slice says False and nothing changes (its own check below);
# this machine's kernel has them, so CI runs these
needs_slices = pytest.mark.skipif(
    not slices_supported(),
    reason=f"custom scheduler slices need Linux 6.12+ on x86_64/aarch64 (this is {platform.system()} "
    f"{platform.release()} on {platform.machine()})",
)

ASK = """
import os, threading
from cellcelly.runtime import ask_for_slice, sched_slice_ns

ask_for_slice(0)  # the kernel's default: a slice this process inherited is not
default = sched_slice_ns()
print("asked", ask_for_slice(300), sched_slice_ns())
seen = []
t = threading.Thread(target=lambda: seen.append(sched_slice_ns()))
t.start(); t.join()
print("thread", seen[0])
pid = os.fork()
if pid == 0:
    print("child", sched_slice_ns(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("outside", sched_slice_ns(pid=os.getpid()))
print("clamped", ask_for_slice(30), sched_slice_ns())
os.nice(3)
print("default", ask_for_slice(0), sched_slice_ns() == default, os.getpriority(os.PRIO_PROCESS, 0))
"""


@needs_slices
def test_a_slice_asked_for_is_the_threads_its_threads_and_its_childrens() -> None:
    out = dict(line.split(" ", 1) for line in python_lines(ASK))  # {key: the rest}
    assert out["asked"] == "True 300000"
    assert out["thread"] == "300000"  # a thread started after inherits it
    assert out["child"] == "300000"  # and a process forked after (the run's children)
    assert out["outside"] == "300000"  # read from outside, as the tests of `run` do
    assert out["clamped"] == "True 100000"  # the kernel's floor, 0.1 ms
    # 0 gives back the kernel's default; the niceness the process had stays (sched_setattr sets both)
    assert out["default"] == "True True 3"


def test_without_the_call_nothing_changes_and_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from cellcelly import runtime

    monkeypatch.setattr(runtime.platform, "machine", lambda: "sparc64")
    assert runtime.ask_for_slice(200) is False
    assert runtime.sched_slice_ns() is None
    assert runtime.slices_supported() is False
