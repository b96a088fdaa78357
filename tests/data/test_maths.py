"""Arithmetic generator: correct answers, seeded, evaluation disjoint by operands."""

from __future__ import annotations

from fugaku_sim.data.maths import generate_problems, is_eval_key, parse_operands


def test_answers_are_correct_and_seeded() -> None:
    a = list(generate_problems(300, seed=3, max_operand=999, want_eval=False))
    b = list(generate_problems(300, seed=3, max_operand=999, want_eval=False))
    assert a == b
    for p in a:
        assert eval(p.prompt.rstrip(" =")) == int(p.answer)  # noqa: S307  (our own prompts)
        assert parse_operands(p.prompt) == p.operands


def test_eval_is_disjoint_from_training_by_operands() -> None:
    train = list(generate_problems(5000, seed=0, max_operand=999, want_eval=False))
    held = list(generate_problems(300, seed=0, max_operand=999, want_eval=True))
    train_keys = {p.key() for p in train}
    held_keys = {tuple(sorted(parse_operands(p.prompt))) for p in held}
    assert held_keys and not train_keys & held_keys
    assert all(is_eval_key(k, 0) for k in held_keys)
