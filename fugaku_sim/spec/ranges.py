"""Ranges on figures: an interval ``low <= value <= high``, and the dotted paths that name a
numeric field of a spec (``node.op_overhead_us``, ``node.gemm_efficiency.0.efficiency``,
``collective_efficiency.p2p``).

A cluster profile gives each figure it only assumes a plausible range, and how to measure it
(its ``assumed:`` section); a fitted software stack gives each fitted parameter its 90%
interval. Predictions sample within them (:mod:`fugaku_sim.sim.intervals`) and
``fugaku-sim sensitivity`` ranks them by how far each moves the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, model_validator

from fugaku_sim.spec.base import SpecModel


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


def with_numbers(model: BaseModel, values: Mapping[str, float]) -> Any:
    """A validated copy of ``model`` with the numbers at the dotted paths of ``values`` set.

    Raises:
        pydantic.ValidationError: the new values break a rule of the model.
    """
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
    return type(model).model_validate(data)
