"""Multiple choice on constructed cases with known answers; arithmetic exact match."""

from __future__ import annotations

import numpy as np
import pytest

from fugaku_sim.evaluate.arithmetic import evaluate_arithmetic, first_line, is_exact_match
from fugaku_sim.evaluate.choice import ChoiceItem, build_continuation_items, score_items
from fugaku_sim.evaluate.lm import choices_logprob, continuation_logprob
from fugaku_sim.evaluate.tokenizer import Tokenizer


class LookupModel:
    """Knows a set of token sequences: after a prefix of one of them it puts logit
    ``confidence`` on that sequence's next token; everywhere else it is uniform."""

    def __init__(self, known: list[list[int]], vocab: int, seq_len: int = 64,
                 confidence: float = 10.0) -> None:
        self.known = known
        self._vocab = vocab
        self._seq_len = seq_len
        self.confidence = confidence

    @property
    def seq_len(self) -> int:
        return self._seq_len

    @property
    def vocab(self) -> int:
        return self._vocab

    def new_cache(self, batch: int) -> None:
        return None

    def logits(self, tokens: np.ndarray, cache: object = None) -> np.ndarray:
        out = np.zeros(tokens.shape + (self._vocab,))
        for b, row in enumerate(tokens.tolist()):
            for t in range(len(row)):
                for seq in self.known:
                    if seq[:t + 1] == row[:t + 1] and t + 1 < len(seq):
                        out[b, t, seq[t + 1]] = self.confidence
        return out


def test_continuation_logprob_is_sum_of_token_logprobs():
    vocab = 10
    model = LookupModel([[1, 2, 3, 4]], vocab)
    # context [1, 2]; continuation [3, 4]: each known token has p = e^10 / (e^10 + 9)
    p_known = np.exp(10) / (np.exp(10) + vocab - 1)
    assert continuation_logprob(model, [1, 2], [3, 4]) == pytest.approx(2 * np.log(p_known))
    # a wrong continuation: first token unknown (uniform-ish), then no match at all
    p_other = 1 / (np.exp(10) + vocab - 1)
    assert continuation_logprob(model, [1, 2], [5, 4]) == pytest.approx(
        np.log(p_other) + np.log(1 / vocab))
    batched = choices_logprob(model, [1, 2], [[3, 4], [5, 4], [3], [5]])
    singles = [continuation_logprob(model, [1, 2], c) for c in ([3, 4], [5, 4], [3], [5])]
    np.testing.assert_allclose(batched, singles, rtol=1e-12)


def test_multiple_choice_known_answer_and_chance():
    vocab = 20
    items = [ChoiceItem([1, 2], [[7, 8], [3, 4], [9, 9]], label=1, choice_chars=[2, 2, 2]),
             ChoiceItem([1, 5], [[6, 6], [7, 7], [3, 4]], label=0, choice_chars=[2, 2, 2])]
    model = LookupModel([[1, 2, 3, 4], [1, 5, 6, 6]], vocab)
    got = score_items(model, items)
    assert got["acc"] == 1.0 and got["acc_norm"] == 1.0
    assert got["chance"] == pytest.approx(1 / 3)
    assert got["items"] == 2 and got["choices"] == 3
    # a model that knows neither answer ties on every choice; argmax takes the first choice
    blind = score_items(LookupModel([], vocab), items)
    assert blind["acc"] == 0.5


def test_length_normalisation_changes_the_pick():
    """Equal log-likelihood per token; the longer-in-characters choice wins acc_norm only."""
    model = LookupModel([], 10)  # uniform: every 2-token choice has the same ll
    item = ChoiceItem([1], [[2, 3], [4, 5]], label=1, choice_chars=[2, 8])
    got = score_items(model, [item])
    assert got["acc"] == 0.0  # tie -> first
    assert got["acc_norm"] == 1.0  # ll / 8 > ll / 2 since ll < 0


def test_built_items_hold_the_true_continuation_and_distinct_distractors():
    docs = [list(range(100 * i, 100 * i + 30)) for i in range(8)]  # 2 segments of 15 each
    items = build_continuation_items(docs, lambda ids: "x" * len(ids), eod_id=2,
                                     context_tokens=10, continuation_tokens=5, n_choices=4,
                                     max_items=12, seed=0)
    assert len(items) == 12
    for it in items:
        body = it.context[1:] if it.context[0] == 2 else it.context
        doc = next(d for d in docs if body[0] in d)
        start = doc.index(body[0])
        assert start in (0, 15) and (it.context[0] == 2) == (start == 0)
        assert body == doc[start:start + 10]
        assert it.choices[it.label] == doc[start + 10:start + 15]
        assert len({tuple(c) for c in it.choices}) == 4
        others = [c for i, c in enumerate(it.choices) if i != it.label]
        assert all(c[0] not in doc for c in others)  # distractors come from other documents
    assert len({it.label for it in items}) > 1  # the true answer's position is drawn
    again = build_continuation_items(docs, lambda ids: "x", 2, 10, 5, 4, 12, seed=0)
    assert [i.choices for i in again] == [i.choices for i in items]
    # too few documents for 4 choices: no items
    assert build_continuation_items(docs[:3], str, 2, 10, 5, 4, 8, seed=0) == []


def test_exact_match_rules():
    assert is_exact_match(" 42\n7 + 1 = 8", "42")
    assert is_exact_match("42", " 42 ")
    assert not is_exact_match("420", "42")
    assert not is_exact_match("\n42", "42")
    assert first_line("  -3  \nmore") == "-3"


def test_arithmetic_exact_match_counts_only_right_answers(tiny_data):
    tok = Tokenizer(tiny_data / "tokenizer.model")
    problems = [("12 + 7 =", "19"), ("3 + 4 =", "7"), ("20 + 22 =", "42"), ("1 + 1 =", "2")]
    known = []
    for prompt, answer in problems[:2]:  # the model knows the first two problems only
        known.append([tok.eod_id] + tok.encode(prompt) + tok.encode(prompt + " " + answer + "\n")
                     [len(tok.encode(prompt)):])
    known.append([tok.eod_id] + tok.encode("20 + 22 =") + tok.encode(" 41\n"))  # wrong
    model = LookupModel(known, tok.vocab_size)
    got = evaluate_arithmetic(model, tok, problems, max_new_tokens=6)
    assert got["problems"] == 4 and got["correct"] == 2
    assert got["exact_match"] == 0.5
    assert [e["correct"] for e in got["examples"]] == [True, True, False, False]
    assert got["examples"][2]["completion"] == "41"


def test_few_shot_context_holds_other_solved_problems_only(tiny_data):
    from fugaku_sim.evaluate.arithmetic import shot_text

    problems = [(f"{i} + 1 =", str(i + 1)) for i in range(6)]
    text = shot_text(problems, 2, shots=3, seed=0)
    lines = text.splitlines()
    assert len(lines) == 3 and "2 + 1 = 3" not in lines
    assert all(line in {f"{i} + 1 = {i + 1}" for i in range(6)} for line in lines)
    assert shot_text(problems, 2, shots=3, seed=0) == text
    assert shot_text(problems, 2, shots=0, seed=0) == ""
    # a model that has learnt the worksheet continues the few-shot context correctly
    tok = Tokenizer(tiny_data / "tokenizer.model")
    ctx = shot_text(problems, 0, 2, seed=1) + "0 + 1 ="
    known = [[tok.eod_id] + tok.encode(ctx) + tok.encode(ctx + " 1\n")[len(tok.encode(ctx)):]]
    got = evaluate_arithmetic(LookupModel(known, tok.vocab_size, seq_len=128), tok,
                              problems[:1] + problems[1:], max_new_tokens=4, shots=2, seed=1)
    assert got["examples"][0]["correct"] and got["shots"] == 2
