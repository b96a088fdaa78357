"""Mixture planning: token targets and document selection (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.data.mixture import plan_tokens, select_documents
from fugaku_sim.errors import UserError


def test_scarcest_domain_sets_the_total() -> None:
    targets = plan_tokens({"ja": 600, "en": 10_000, "code": 1_000, "maths": 50},
                          {"ja": 0.6, "en": 0.25, "code": 0.1, "maths": 0.05}, 1.0)
    assert targets == pytest.approx({"ja": 600, "en": 250, "code": 100, "maths": 50})


def test_max_epochs_allows_repeats() -> None:
    targets = plan_tokens({"ja": 600, "en": 10_000}, {"ja": 0.6, "en": 0.4}, 2.0)
    assert targets == pytest.approx({"ja": 1200, "en": 800})


def test_share_without_text_is_a_user_error() -> None:
    with pytest.raises(UserError, match="maths has a share but no training text"):
        plan_tokens({"ja": 10, "maths": 0}, {"ja": 0.9, "maths": 0.1}, 1.0)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=200),
       fraction=st.floats(0.0, 3.5), seed=st.integers(0, 2**32 - 1))
def test_selection_lands_within_one_document_of_target(sizes: list[int], fraction: float,
                                                       seed: int) -> None:
    arr = np.asarray(sizes)
    target = fraction * arr.sum()
    chosen = select_documents(arr, target, np.random.default_rng(seed))
    got = int(arr[chosen].sum()) if len(chosen) else 0
    assert abs(got - target) <= max(sizes)
    counts = np.bincount(chosen, minlength=len(arr))
    assert counts.max() - counts.min() <= 1  # repeats are whole epochs


@settings(max_examples=30, deadline=None)
@given(avail=st.lists(st.integers(1000, 10**7), min_size=4, max_size=4),
       raw=st.lists(st.floats(0.01, 1.0), min_size=4, max_size=4))
def test_planned_shares_equal_targets(avail: list[int], raw: list[float]) -> None:
    domains = ["ja", "en", "code", "maths"]
    shares = {d: r / sum(raw) for d, r in zip(domains, raw, strict=True)}
    targets = plan_tokens(dict(zip(domains, avail, strict=True)), shares, 1.0)
    total = sum(targets.values())
    for d in domains:
        assert targets[d] / total == pytest.approx(shares[d])
        assert targets[d] <= dict(zip(domains, avail, strict=True))[d] * (1 + 1e-9)
