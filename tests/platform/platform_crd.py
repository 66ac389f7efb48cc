"""The CellCellyStack CRD as the API server would use it, offline: defaulting, schema and CEL rules.

The API server defaults a custom resource from the CRD's openAPIV3Schema, validates it against the schema,
then evaluates the `x-kubernetes-validations` CEL rules (transition rules, those naming `oldSelf`, on
updates only). `jsonschema` does the schema part (it ignores the x-kubernetes-* keys) and `celpy` the CEL.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "cellcellystacks.cellcelly.io.yaml"
SAMPLES = ROOT / "crds" / "samples"


@functools.cache
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    return loaded


def schema() -> dict[str, Any]:
    (version,) = crd()["spec"]["versions"]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """What the CRD's openAPIV3Schema says is wrong with a (defaulted) resource; [] when valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(resource)]


def apply_defaults(node_schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: absent properties with a default get a copy of
    it, then defaulting goes on inside (so `default: {}` on an object lets its fields' defaults apply)."""
    if isinstance(value, dict) and node_schema.get("type") == "object":
        props = node_schema.get("properties", {})
        for name, sub in props.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        for name, item in value.items():
            if name in props:
                value[name] = apply_defaults(props[name], item)
            elif isinstance(node_schema.get("additionalProperties"), dict):
                value[name] = apply_defaults(node_schema["additionalProperties"], item)
    elif isinstance(value, list) and "items" in node_schema:
        return [apply_defaults(node_schema["items"], item) for item in value]
    return value


def defaulted(resource: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = apply_defaults(schema(), copy.deepcopy(resource))
    return result


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]  # property names from the root ("*" for list items / map values)
    rule: str
    message: str

    @property
    def transition(self) -> bool:
        return "oldSelf" in self.rule


def rules(node: dict[str, Any] | None = None, path: tuple[str, ...] = ()) -> Iterator[Rule]:
    """Every CEL rule in the schema, with where it sits."""
    node = schema() if node is None else node
    for entry in node.get("x-kubernetes-validations", []):
        yield Rule(path, entry["rule"], entry.get("message", ""))
    for name, sub in node.get("properties", {}).items():
        yield from rules(sub, (*path, name))
    if isinstance(node.get("items"), dict):
        yield from rules(node["items"], (*path, "*"))
    if isinstance(node.get("additionalProperties"), dict):
        yield from rules(node["additionalProperties"], (*path, "*"))


def _nodes(value: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        yield value
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, dict):
            value = list(value.values())
        children = value if isinstance(value, list) else []
        for child in children:
            yield from _nodes(child, rest)
    elif isinstance(value, dict) and head in value:
        yield from _nodes(value[head], rest)


@functools.cache
def _program(expression: str) -> Any:
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(expression))


def compile_rules() -> None:
    """Compile every rule now: celpy's parser raises the recursion limit the first time it runs, which
    Hypothesis reports as an error when it happens inside a property test."""
    for rule in rules():
        _program(rule.rule)


def cel_errors(resource: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Messages of the CEL rules the (defaulted) resource breaks; transition rules only when `old` is given
    and holds the same field, as the API server does."""
    import celpy

    broken = []
    for rule in rules():
        if rule.transition:
            if old is None:
                continue
            pairs = list(zip(_nodes(resource, rule.path), _nodes(old, rule.path), strict=False))
        else:
            pairs = [(node, None) for node in _nodes(resource, rule.path)]
        for node, old_node in pairs:
            activation = {"self": celpy.json_to_cel(node)}
            if rule.transition:
                activation["oldSelf"] = celpy.json_to_cel(old_node)
            try:
                ok = bool(_program(rule.rule).evaluate(activation))
            except celpy.CELEvalError as exc:  # the API server rejects on an evaluation error too
                broken.append(f"{rule.message} (error: {exc})")
                continue
            if not ok:
                broken.append(rule.message)
    return broken


def samples() -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(SAMPLES.glob("*.yaml"))}


def _below(path: tuple[str, ...], prefix: tuple[str, ...]) -> tuple[str, ...] | None:
    return path[len(prefix) :] if path[: len(prefix)] == prefix else None


def _defaults(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every `default` in the schema, with where it sits (as in `rules`)."""
    if "default" in node:
        yield path, node["default"]
    for name, sub in node.get("properties", {}).items():
        yield from _defaults(sub, (*path, name))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _defaults(node[key], (*path, "*"))


def default_rule_errors() -> list[str]:
    """The CRD-creation check the API server makes and cel-python alone never did: each `default` is
    validated against its own node's schema INCLUDING the CEL rules at or below that node, on the value
    exactly as written, without the nested defaults structural defaulting would add to an object (the
    server does not default inside a default). A rule reading a field that the default leaves out then
    fails with "no such key" and the whole CRD is refused (kube-apiserver's
    apiextensions/validation: ValidateCustomResourceDefinitionOpenAPISchema → defaulting.validate).
    Transition rules see the default as both self and oldSelf, as the server passes it twice."""
    import celpy

    problems = []
    for where, value in _defaults(schema()):
        for rule in rules():
            rel = _below(rule.path, where)
            if rel is None:
                continue
            for node in _nodes(value, rel):
                activation = {"self": celpy.json_to_cel(node)}
                if rule.transition:
                    activation["oldSelf"] = activation["self"]
                label = ".".join(where) or "<root>"
                try:
                    ok = bool(_program(rule.rule).evaluate(activation))
                except celpy.CELEvalError as exc:
                    problems.append(f"{label}.default: {rule.rule!r}: {exc}")
                    continue
                if not ok:
                    problems.append(f"{label}.default: {rule.rule!r} is false: {rule.message}")
    return problems
