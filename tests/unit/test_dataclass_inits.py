"""The dataclasses of the compiled modules whose `__init__` is written out do what the generated
one would. Why written out: mypyc compiles a class's own `__init__`, while the one `@dataclass`
generates runs as interpreted Python in the compiled build too (~1 µs an object; about a tenth of
the OCS's CPU a charge went to them). Run on the source tree: sentinels stand in for the values,
which the compiled classes would refuse by type."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

SETUP = Path(__file__).resolve().parents[2] / "setup.py"


def compiled_modules() -> list[str]:
    """setup.py's COMPILED, read without running setup.py (importing it would build)."""
    for node in ast.parse(SETUP.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED":
            return [m.removesuffix(".py").replace("/", ".") for m in ast.literal_eval(node.value)]
    raise AssertionError("no COMPILED in setup.py")


def written_out(cls: type) -> bool:
    """mypyc's own `__init__` (no code object) or the source's; not the one dataclasses made by exec."""
    code = getattr(cls.__init__, "__code__", None)
    return code is None or code.co_filename != "<string>"


MODULES = [importlib.import_module(m) for m in compiled_modules()]
WRITTEN_OUT = sorted(
    (
        cls
        for module in MODULES
        for cls in vars(module).values()
        if isinstance(cls, type)
        and cls.__module__ == module.__name__
        and dataclasses.is_dataclass(cls)
        and written_out(cls)
    ),
    key=lambda c: f"{c.__module__}.{c.__qualname__}",
)
# built per charge or per CCR: losing one of these inits shows in the figures, not the tests
HOT = {
    "ServiceUsage", "ChargeRequest", "ServiceResult", "ChargeAnswer", "UsageEvent", "Outcome",
    "Bucket", "Reservation", "RatedService", "Session", "Account", "Commit", "OutboxEntry",
    "Table", "Answer", "ServiceRequest", "MsccResult", "CcaResult", "Msisdn", "TrackedSession",
    "Outgoing", "Record",
}  # fmt: skip


def reference(cls: type) -> type:
    """The dataclass `cls` would be with its `__init__` generated."""
    specs = []
    for f in dataclasses.fields(cls):
        spec = dataclasses.field(default=f.default, default_factory=f.default_factory, init=f.init)
        specs.append((f.name, f.type, spec))
    frozen = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    return dataclasses.make_dataclass(f"Generated{cls.__name__}", specs, frozen=frozen)


def values(obj: object) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


# none on the compiled build; Msisdn's init also checks its value (tests/unit/test_msisdn.py)
SOURCE = [c for c in WRITTEN_OUT if inspect.isfunction(c.__init__) and c.__name__ != "Msisdn"]


def test_the_hot_classes_have_their_init_written_out() -> None:
    assert HOT <= {c.__name__ for c in WRITTEN_OUT}


@pytest.mark.parametrize("cls", SOURCE, ids=lambda c: c.__qualname__)
def test_a_written_out_init_takes_and_keeps_what_the_generated_one_does(cls: type) -> None:
    generated = reference(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    assert list(inspect.signature(cls).parameters) == [f.name for f in fields]
    given = [object() for _ in fields]  # every field given, by position: kept as given
    assert values(cls(*given)) == values(generated(*given))
    by_name = {f.name: v for f, v in zip(fields, given, strict=True)}
    assert values(cls(**by_name)) == values(generated(**by_name))
    required = [object() for f in fields if f.default is f.default_factory is dataclasses.MISSING]
    defaults, expected = values(cls(*required)), values(generated(*required))
    assert defaults == expected  # each default, or a new empty container for a default factory
    again = values(cls(*required))
    for f in fields:
        if f.default_factory not in (dataclasses.MISSING, tuple):
            assert defaults[f.name] is not again[f.name], f"{f.name}: one container for every object"


@pytest.mark.parametrize("cls", [c for c in SOURCE if c.__dataclass_params__.frozen], ids=str)  # type: ignore[attr-defined]
def test_a_frozen_class_stays_frozen(cls: type) -> None:
    fields = [f for f in dataclasses.fields(cls) if f.init]
    obj = cls(*(object() for f in fields if f.default is f.default_factory is dataclasses.MISSING))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, fields[0].name, None)
