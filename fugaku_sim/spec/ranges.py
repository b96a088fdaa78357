"""Ranges on figures: an interval ``low <= value <= high``, and the dotted paths that name a
numeric field of a spec (``node.op_overhead_us``, ``node.gemm_efficiency.0.efficiency``,
``collective_efficiency.p2p``).

A cluster profile gives each figure it only assumes a plausible range, and how to measure it
(its ``assumed:`` section); a fitted software stack gives each fitted parameter its 90%
interval. Predictions sample within them (:mod:`fugaku_sim.sim.intervals`) and
``fugaku-sim sensitivity`` ranks them by how far each moves the answer.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from fugaku_sim.spec.base import SpecModel, constrained


class Interval(SpecModel):
    """A range ``low <= high`` (a fitted parameter's 90% interval)."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.low > self.high:
            raise ValueError(f"low: {self.low} is above high ({self.high})")
        return self


class AssumedRange(Interval):
    """The plausible range of an assumed figure, and the measurement that would pin it."""

    measure: str = Field(default="", description="the microbenchmark or record that measures it")


def numeric_at(obj: Any, path: str) -> float:
    """The number at dotted ``path`` in a spec: field names, list indices, mapping keys.

    Raises:
        ValueError: ``path: ...`` when it names nothing, or something not a number.
    """
    node: Any = obj
    for part in path.split("."):
        if isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise ValueError(f"{path}: names no field")
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise ValueError(f"{path}: not a number")
    return float(node)


def check_ranges(obj: Any, ranges: Mapping[str, Interval], section: str) -> None:
    """Each range's path names a number of ``obj`` that lies within it.

    Raises:
        ValueError: ``<section>.<path>: ...`` for the first that does not.
    """
    for path, interval in ranges.items():
        try:
            value = numeric_at(obj, path)
        except ValueError as exc:
            raise ValueError(f"{section}.{exc}") from None
        if not interval.low <= value <= interval.high:
            raise ValueError(f"{section}.{path}: the value {value:g} is outside "
                             f"[{interval.low:g}, {interval.high:g}]")


@functools.cache
def _field_adapter(model: type[BaseModel], name: str, depth: int) -> TypeAdapter[Any]:
    """A validator of the values field ``name`` of ``model`` takes (its type with its
    constraints and limits), or, ``depth`` levels into it, its list items or mapping values."""
    field = model.model_fields[name]
    annotation = constrained(field.annotation, field.metadata)
    for _ in range(depth):  # list[X] -> X; dict[K, V] -> V
        annotation = typing.get_args(_without_none(annotation))[-1]
    return TypeAdapter(annotation)


def _without_none(annotation: Any) -> Any:
    """``X`` of ``X | None`` and of ``Annotated[X | None, ...]``."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if type(None) in typing.get_args(annotation) and len(args) == 1:
        return args[0]
    return annotation


def _field_of(obj: Any, path: str) -> tuple[type[BaseModel], str, int]:
    """The model class and field the dotted ``path`` (which names a number of ``obj``) ends
    in, and how many list indices or mapping keys follow the field."""
    node, owner, name, depth = obj, type(obj), "", 0
    for part in path.split("."):
        if isinstance(node, BaseModel):
            owner, name, depth = type(node), part, 0
            node = getattr(node, part)
        else:
            depth += 1
            node = node[int(part)] if isinstance(node, list) else node[part]
    return owner, name, depth


def check_endpoints(obj: BaseModel, ranges: Mapping[str, Interval], section: str) -> None:
    """Each range's ends are values its field takes (a prediction samples between them and
    sets the sample in the spec, which would refuse it mid-way). Call after
    :func:`check_ranges`, which checks that each path names a number.

    Raises:
        ValueError: ``<section>.<path>.high: ...`` for the first end the field refuses.
    """
    for path, interval in ranges.items():
        adapter = _field_adapter(*_field_of(obj, path))
        for end in ("low", "high"):
            try:
                adapter.validate_python(getattr(interval, end))
            except ValidationError as exc:
                msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
                raise ValueError(f"{section}.{path}.{end}: {msg}") from None


def with_numbers(model: BaseModel, values: Mapping[str, float], prefix: str = "") -> Any:
    """A validated copy of ``model`` with the numbers at the dotted paths of ``values`` set.

    ``prefix`` heads the field's path in the message (``cluster``).

    Raises:
        SpecError: the new values break a rule of the model (one line naming the field).
    """
    from fugaku_sim.errors import SpecError
    from fugaku_sim.spec.load import validation_message

    data = model.model_dump()
    for path, value in values.items():
        parts = path.split(".")
        node = data
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    try:
        return type(model).model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_message(exc, "", prefix)) from None
