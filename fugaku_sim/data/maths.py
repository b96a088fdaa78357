"""Seeded arithmetic problems with answers, for the maths domain and its evaluation set.

A problem is one of ``a + b``, ``a - b``, ``a * b`` or a two-step ``(a op b) op c``. The
evaluation set is disjoint from training *by operands*: a problem's key is the sorted tuple of
its operands, keys are split by a seeded hash, and a key that belongs to evaluation never
appears in any training problem (whatever the operator or order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# Out of every 1000 operand keys, this many are reserved for evaluation.
EVAL_KEYS_PER_MILLE = 50


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem: ``prompt`` such as ``"(12 + 7) * 3 ="`` and its ``answer``."""

    prompt: str
    answer: str
    operands: tuple[int, ...]

    def key(self) -> tuple[int, ...]:
        """The operand key that decides training vs evaluation (sorted operands)."""
        return tuple(sorted(self.operands))


def is_eval_key(key: tuple[int, ...], seed: int) -> bool:
    """True when problems with these operands belong to the evaluation set (seeded hash)."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % 1000 < EVAL_KEYS_PER_MILLE


def draw_problem(rng: np.random.Generator, max_operand: int) -> Problem:
    """One random problem; multiplication uses smaller operands so answers stay short."""
    kind = int(rng.integers(0, 5))
    ops = ["+", "-", "*"]
    if kind < 3:
        op = ops[kind]
        hi = max_operand if op != "*" else max(10, int(max_operand ** 0.5) * 3)
        a, b = (int(x) for x in rng.integers(0, hi + 1, size=2))
        return Problem(f"{a} {op} {b} =", str(_apply(a, op, b)), (a, b))
    op1, op2 = (ops[int(i)] for i in rng.integers(0, 3, size=2))
    a, b, c = (int(x) for x in rng.integers(0, max(10, max_operand // 10) + 1, size=3))
    value = _apply(_apply(a, op1, b), op2, c)
    return Problem(f"({a} {op1} {b}) {op2} {c} =", str(value), (a, b, c))


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def generate_problems(count: int, seed: int, max_operand: int,
                      want_eval: bool) -> Iterator[Problem]:
    """``count`` problems whose operand keys are evaluation keys iff ``want_eval``.

    The same seed gives the same sequence; training and evaluation draw from different
    streams but filter with the same key hash, so the two sets never share an operand key.
    """
    rng = np.random.default_rng([seed, 1 if want_eval else 0])
    made = 0
    tries = 0
    while made < count:
        tries += 1
        if tries > 1000 * (count + 10):
            raise RuntimeError("cannot draw enough problems; raise max_operand")
        p = draw_problem(rng, max_operand)
        if is_eval_key(p.key(), seed) == want_eval:
            made += 1
            yield p


def format_worksheet(problems: list[Problem]) -> str:
    """A training document: one ``prompt answer`` line per problem."""
    return "".join(f"{p.prompt} {p.answer}\n" for p in problems)


def parse_operands(prompt: str) -> tuple[int, ...]:
    """Operands of a prompt as written by :func:`draw_problem` (for disjointness checks)."""
    import re

    return tuple(int(x) for x in re.findall(r"\d+", prompt))
