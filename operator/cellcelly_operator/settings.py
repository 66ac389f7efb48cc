"""kopf settings that follow from how the operator is deployed (a pure function of its scope)."""

from __future__ import annotations

import kopf

# CELLCELLY_OPERATOR_SCOPE, set by the operator chart (watch.scope) and by `python -m cellcelly_operator -n`
SCOPE_ENV = "CELLCELLY_OPERATOR_SCOPE"

# How often kopf looks again whether a timer asked to stop (the stack is being deleted) has finished its
# pass. kopf's default, 60 s, held a stack's finalizer a whole minute when its delete landed during a
# tick ("Sleeping for 60 seconds for the delayed handlers"); and if the CRD went away meanwhile (deleted
# with stacks left), kopf stopped watching before it looked again and the finalizer stayed for good.
# A tick's pass takes well under a second (a few with a slow server), so one look a second suffices.
TIMER_EXIT_POLL = 1.0
# How long kopf waits in place for that pass to end before it falls back to polling: a tick between two
# requests ends within this, and the finalizer goes in the same processing cycle.
TIMER_INSTANT_EXIT = 0.5


def tune(settings: kopf.OperatorSettings, scope: str) -> None:
    """`scope` "namespace": kopf watches only the namespaces it is given (--namespace) and never lists
    namespaces or CRDs cluster-wide; kopf otherwise lists namespaces even for exact names, and under the
    chart's namespaced RBAC retried that ~55 s (9 times) before falling back, so a stack took 64 s to get
    Ready. The CRD must then exist when the operator starts (kopf reads discovery once)."""
    settings.scanning.disabled = scope == "namespace"
    settings.background.cancellation_polling = TIMER_EXIT_POLL
    settings.background.instant_exit_timeout = TIMER_INSTANT_EXIT
