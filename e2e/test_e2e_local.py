"""The e2e scenario against the embedded stack (`cellcelly run`, as `make run` starts it).

Healing here is a supervisor restarting the SIGKILLed process on the same data directory: the
subscriber's balance must be exactly what it was before the kill, and new traffic charged.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from local_stack import LocalStack
from scenario import SERVICES, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_scenario_on_the_embedded_stack(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stack = LocalStack(data, tmp_path / "cellcelly-run.log").start()
    try:
        outcome = run_scenario(stack)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- cellcelly run log ---\n{stack.log_tail()}") from None
    finally:
        stack.stop()

    # signed up with the package's allowances untouched, then charged
    assert all(outcome.signed_up.used[s] == 0 for s in SERVICES)
    assert outcome.after_traffic.moved_from(outcome.signed_up)
    # the SIGKILL lost nothing and changed nothing; the restarted stack charges again
    assert stack.starts == 2, outcome.healed
    assert outcome.after_heal == outcome.after_traffic
    assert outcome.after_more_traffic.moved_from(outcome.after_heal)
    assert all(r["result_counts"].get("2001", 0) > 0 for r in outcome.reports)
    # the unknown subscriber was answered, never charged
    assert outcome.refused["answers"] > 0 and "2001" not in outcome.refused["result_counts"]
    # deleted: nothing answers any more, the data directory stays
    assert not stack.alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.mw_url}/healthz", timeout=2)
    assert (data / "cellcelly.db").exists() and (data / "balances").is_dir()
