"""kopf settings that follow from how the operator is deployed (a pure function of its scope)."""

from __future__ import annotations

import kopf

# CELLCELLY_OPERATOR_SCOPE, set by the operator chart (watch.scope) and by `python -m cellcelly_operator`
SCOPE_ENV = "CELLCELLY_OPERATOR_SCOPE"

# How often kopf looks again whether a timer asked to stop (the stack is being deleted) has finished its
# pass. kopf's default, 60 s, held a stack's finalizer a whole minute when its delete landed during a
# tick ("Sleeping for 60 seconds for the delayed handlers"; measured on a real API server: 64 s, and
# 5-6 s with these settings for a tick slowed to 3 s). A pass takes about a second, so one look a second.
TIMER_EXIT_POLL = 1.0
# How long kopf waits in place for that pass to end before it falls back to polling.
TIMER_INSTANT_EXIT = 0.5


def tune(settings: kopf.OperatorSettings, scope: str) -> None:
    """kopf's scanning (namespaces and CRDs, followed at run time) off, in both scopes:
    - namespace scope: kopf otherwise lists namespaces cluster-wide even for exact --namespace names;
      under the chart's namespaced RBAC it retried that ~55 s before falling back, so a stack took 64 s
      to be handled;
    - both: a CRD being deleted is served without `patch`, and kopf then stops serving the resource
      ("Non-patchable resources will not be served"), so deleting the CRD with stacks left kept their
      finalizers until removed by hand (seen on a real API server in cluster scope; with scanning off
      the stacks were handled and the CRD gone in ~5 s).
    The operator serves one resource it knows; what scanning adds (CRDs installed after the operator)
    is not needed: install the CRD before the operator (the charts' order), or restart it after."""
    del scope  # the same in both scopes today; kept so the chart's setting has one place to act
    settings.scanning.disabled = True
    settings.background.cancellation_polling = TIMER_EXIT_POLL
    settings.background.instant_exit_timeout = TIMER_INSTANT_EXIT
