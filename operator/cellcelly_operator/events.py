"""Kubernetes Events (events.k8s.io/v1) about a stack, named by us (not generateName) so each is unique."""

from __future__ import annotations

import datetime
import os
import uuid
from typing import Literal

from cellcelly_operator.labels import GROUP, KIND, MANAGED_BY, VERSION, Manifest
from cellcelly_operator.spec import Stack


def event(
    stack: Stack, reason: str, note: str, kind: Literal["Normal", "Warning"], action: str, now: float
) -> Manifest:
    when = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"{stack.name}.{uuid.uuid4().hex[:16]}", "namespace": stack.namespace},
        "eventTime": when,
        "reportingController": f"{GROUP}/{MANAGED_BY}",
        "reportingInstance": os.environ.get("HOSTNAME", MANAGED_BY)[:128],
        "action": action,
        "reason": reason,
        "type": kind,
        "note": note[:1024],
        "regarding": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": stack.name,
            "namespace": stack.namespace,
            "uid": stack.uid,
        },
    }
