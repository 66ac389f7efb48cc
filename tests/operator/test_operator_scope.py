"""The operator's kopf settings: it never scans namespaces or CRDs cluster-wide, does not start without its
CRD, and a stack deleted while a timer pass runs loses its finalizer about a second after the pass, not
kopf's 60 s later.

The namespace-scope flow runs `kopf run --namespace telco` against kmock (what kmock adds: a real HTTP
server that records every request, and one that, like the chart's namespaced RBAC, does not answer
`GET /api/v1/namespaces`: kopf retried that ~55 s before falling back, so a stack took 64 s to be
handled). The same was checked by hand on a real API server under the chart's own Role (issue 13);
tests/cluster is where that belongs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kopf
import pytest
from cellcelly_operator import children, settings, spec
from operator_kit import SPECS, Api, eventually, stack_body

from cellcelly_dev import operator_bench as bench
from cellcelly_testing import stop_process

pytestmark = [pytest.mark.operator, pytest.mark.timeout(120)]

NS = "telco"


def test_kopf_scanning_is_off_in_both_scopes() -> None:
    """Namespace scope: no cluster-wide list of namespaces (the chart grants none). Both: a CRD being
    deleted is served without `patch`, and scanning kopf then dropped the resource and left the stacks'
    finalizers (seen on a real API server)."""
    for scope in ("namespace", "cluster"):
        tuned = kopf.OperatorSettings()
        assert tuned.scanning.disabled is False  # kopf's default
        settings.tune(tuned, scope)
        assert tuned.scanning.disabled is True, scope


def test_a_timer_asked_to_stop_is_looked_at_again_within_a_second() -> None:
    tuned = kopf.OperatorSettings()
    assert tuned.background.cancellation_polling == 60  # kopf's default: the minute the issue saw
    settings.tune(tuned, "cluster")
    assert tuned.background.cancellation_polling <= 1
    assert tuned.background.instant_exit_timeout is not None and tuned.background.instant_exit_timeout < 1


def _scanning(request: Any) -> bool:
    path = str(request.url.path).rstrip("/")
    return path == "/api/v1/namespaces" or "customresourcedefinitions" in path


async def test_namespace_scope_handles_a_stack_at_once_and_lists_no_namespaces(
    api: Api, kmock: Any, tmp_path: Path
) -> None:
    kubeconfig = bench.write_kubeconfig(tmp_path / "kubeconfig", api.url)
    log = tmp_path / "operator.log"
    env = dict(
        os.environ,
        KUBECONFIG=str(kubeconfig),
        CELLCELLY_OPERATOR_TICK="1",
        CELLCELLY_OPERATOR_SCOPE="namespace",  # what the chart sets with watch.scope namespace
    )
    command = [sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={NS}"]
    command += ["-m", "cellcelly_operator.handlers"]
    with log.open("a") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        await api.create(
            f"/apis/cellcelly.io/v1alpha1/namespaces/{NS}/cellcellystacks", stack_body("ns", SPECS["minimal"])
        )
        stack = spec.from_body(stack_body("ns", SPECS["minimal"]))
        paths = [children.kind_of(m).item(NS, m["metadata"]["name"]) for m in children.build(stack)]

        async def made() -> bool:
            return all([await api.get(p) is not None for p in paths])

        await eventually(made, timeout=20, what="the stack's children")
        took = time.monotonic() - started
        assert took < 20, took
        assert [str(r.url.path) for r in list(kmock) if _scanning(r)] == []
    finally:
        stop_process(proc)
        sys.stdout.write(log.read_text()[-4000:])
