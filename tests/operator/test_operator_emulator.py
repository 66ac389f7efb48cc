"""The tests' kmock does what a real API server does and the operator relies on (bench.emulator_class):
the server's uid on create, generateName, server-side apply creating, label selectors, garbage collection.
Each of these was once bent for in the operator; if the emulator stops doing one, this fails, not a flow."""

from __future__ import annotations

from typing import Any

import pytest
from cellcelly_operator.kube import APPLY
from operator_kit import Api

pytestmark = [pytest.mark.operator, pytest.mark.timeout(60)]

CMS = "/api/v1/namespaces/telco/configmaps"


def cm(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "telco", "labels": labels or {}, **meta},
        "data": {"k": "v"},
    }


async def test_uids_are_the_servers_and_generate_name_names(api: Api) -> None:
    await api.create(CMS, cm("a", uid="client-chosen"))
    await api.create(CMS, cm("b"))
    a, b = await api.get(f"{CMS}/a"), await api.get(f"{CMS}/b")
    assert a and b
    assert a["metadata"]["uid"] not in ("client-chosen", b["metadata"]["uid"])
    nameless = cm("")
    nameless["metadata"] = {"generateName": "ev.", "namespace": "telco"}
    await api.create(CMS, nameless)
    await api.create(CMS, nameless)
    names = [i["metadata"]["name"] for i in await api.items(CMS)]
    assert len([n for n in names if n.startswith("ev.")]) == 2, names


async def test_label_selectors_filter_lists(api: Api) -> None:
    await api.create(CMS, cm("mine", {"app": "x", "tier": "a"}))
    await api.create(CMS, cm("other", {"app": "y"}))
    async with api.session.get(api.url + CMS, params={"labelSelector": "app=x,tier=a"}) as rsp:
        got = await rsp.json()
    assert [i["metadata"]["name"] for i in got["items"]] == ["mine"]


async def test_apply_creates_and_owners_gone_take_their_children(api: Api) -> None:
    headers = {"Content-Type": APPLY}
    params = {"fieldManager": "t", "force": "true"}
    async with api.session.patch(
        f"{api.url}{CMS}/owner", json=cm("owner"), headers=headers, params=params
    ) as rsp:
        assert rsp.status < 300, await rsp.text()
    owner = await api.get(f"{CMS}/owner")
    assert owner is not None and owner["metadata"]["uid"]
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    await api.create(CMS, cm("child", ownerReferences=[ref]))
    child_ref = {**ref, "name": "child"}
    child = await api.get(f"{CMS}/child")
    assert child is not None
    await api.create(CMS, cm("grandchild", ownerReferences=[{**child_ref, "uid": child["metadata"]["uid"]}]))
    await api.create(CMS, cm("bystander"))
    await api.delete(f"{CMS}/owner")
    assert await api.get(f"{CMS}/child") is None
    assert await api.get(f"{CMS}/grandchild") is None
    assert await api.get(f"{CMS}/bystander") is not None
