"""Standard labels, owner references and the metadata every child object carries."""

from __future__ import annotations

from typing import Any

from cellcelly_operator.spec import Stack

GROUP = "cellcelly.io"
VERSION = "v1alpha1"
PLURAL = "cellcellystacks"
KIND = "CellCellyStack"
MANAGED_BY = "cellcelly-operator"
CONFIG_HASH = "cellcelly.io/config-hash"

Manifest = dict[str, Any]


def selector(stack: Stack, component: str) -> dict[str, str]:
    """The immutable part of the labels: what Deployments and StatefulSets select their pods by."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": stack.name}


def labels(stack: Stack, component: str) -> dict[str, str]:
    return {
        **selector(stack, component),
        "app.kubernetes.io/part-of": "cellcelly",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": stack.spec.version,
    }


def owner_reference(stack: Stack) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": stack.name,
        "uid": stack.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(stack: Stack, component: str, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or stack.child(component),
        "namespace": stack.namespace,
        "labels": labels(stack, component),
        "ownerReferences": [owner_reference(stack)],
    }


def component_of(obj: Manifest) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/name", ""))
