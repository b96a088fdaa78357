"""Shared base for the spec models: frozen, strict about unknown keys, finite numbers, no
booleans where a number is meant.

Every number a user sets in a spec file, a config or on the command line passes through a
model built on :class:`SpecModel`, so its rules hold everywhere:

- ``extra="forbid"``: a misspelt key is an error, not a silently ignored setting;
- ``allow_inf_nan=False``: ``.inf``, ``-inf`` and ``.nan`` (YAML) or ``inf``/``nan``
  (command line) are refused for every float, nested ones included: an infinite learning rate
  or a NaN weight would pass every ``gt=0`` check and break later (NaN weights, a traceback);
- a boolean is refused where the field holds no boolean: YAML's ``layers: true`` would be
  ``1`` to pydantic's lax integers, silently;
- no number beyond :data:`fugaku_sim.spec.limits.MAX_MAGNITUDE` in any field: the spec's
  units are human-scale (GiB, GB/s, hours, GFLOP/s), so ``1e30`` is a typo wherever it is;
  fields with a known largest sane value have their own, tighter limit (``spec/limits.py``).
"""

from __future__ import annotations

import math
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from fugaku_sim.spec.limits import MAX_MAGNITUDE


def admits_bool(annotation: Any) -> bool:
    """Whether a field of type ``annotation`` may legitimately hold ``True``/``False``
    (a bool anywhere in it, ``Any``, or a nested model, which checks its own fields).

    >>> admits_bool(int | None), admits_bool(bool), admits_bool(list[int])
    (False, True, False)
    """
    if annotation is bool or annotation is Any:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    if typing.get_origin(annotation) is typing.Literal:
        return any(isinstance(a, bool) for a in typing.get_args(annotation))
    return any(admits_bool(a) for a in typing.get_args(annotation))


def constrained(annotation: Any, metadata: list[Any]) -> Any:
    """``annotation`` with a field's constraints and validators (``FieldInfo.metadata``):
    the type a value of that field must have (``Annotated`` needs at least one)."""
    if not metadata:
        return annotation
    params = (annotation, *metadata)
    return typing.Annotated[params]  # a tuple subscript: Annotated[annotation, *metadata]


def nests_model(annotation: Any) -> bool:
    """Whether a field of type ``annotation`` holds a spec model (which checks its own fields,
    naming them)."""
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    return any(nests_model(a) for a in typing.get_args(annotation))


def largest_magnitude(value: Any) -> float:
    """The largest absolute finite number in ``value`` (a number, or a list/tuple/mapping
    holding numbers; booleans, text, inf and NaN count 0; an integer too large for a float
    counts as infinite)."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int):
        return abs(float(value)) if value.bit_length() < 1024 else float("inf")
    if isinstance(value, float):  # inf and NaN: pydantic's "finite number" says it better
        return abs(value) if math.isfinite(value) else 0.0
    if isinstance(value, list | tuple):
        return max((largest_magnitude(v) for v in value), default=0.0)
    if isinstance(value, dict):
        return max((largest_magnitude(v) for v in value.values()), default=0.0)
    return 0.0


def holds_bool(value: Any) -> bool:
    """Whether ``value`` is a bool or a list/tuple/mapping holding one (values, not keys)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, (list, tuple)):
        return any(holds_bool(v) for v in value)
    if isinstance(value, dict):
        return any(holds_bool(v) for v in value.values())
    return False


class SpecModel(BaseModel):
    """A frozen pydantic model that rejects unknown keys (a misspelt key is an error),
    non-finite floats, booleans given for numbers and absurd magnitudes (see the module
    docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_or_absurd_number(cls, data: Any) -> Any:
        # a model validator, not a field one: discriminator fields (``kind``) take none
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if field is not None and holds_bool(value) and not admits_bool(field.annotation):
                raise ValueError(f"{name}: expected a number or text, not the boolean {value!r}")
            if field is not None and not nests_model(field.annotation) \
                    and largest_magnitude(value) > MAX_MAGNITUDE:
                raise ValueError(f"{name}: a number beyond {MAX_MAGNITUDE:.0e} (a typo? the "
                                 "spec's units are GiB, GB/s, hours, GFLOP/s)")
        return data
