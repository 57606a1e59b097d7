"""Drafters and the draft budget, without a model."""

from __future__ import annotations

from codespark.engine.speculative import DraftBudget, NgramDrafter


def test_ngram_drafter_continues_the_latest_earlier_match() -> None:
    tokens = [1, 2, 3, 4, 5, 9, 1, 2, 3, 4, 6, 7, 1, 2, 3, 4]
    assert NgramDrafter().draft(tokens, 2) == [6, 7]  # the most recent "1 2 3 4" was followed by 6 7
    assert NgramDrafter().draft([1, 2, 3, 4], 5) == []  # nothing earlier to copy


def test_draft_length_doubles_on_full_acceptance_up_to_the_cap() -> None:
    budget = DraftBudget(max_draft=32, baseline=0)
    lengths = []
    for _ in range(6):
        n = budget.length()
        lengths.append(n)
        budget.record(n, n, 0.01)
    assert lengths == [2, 4, 8, 16, 32, 32]


def test_partial_and_rejected_drafts_shrink_and_pause() -> None:
    budget = DraftBudget(max_draft=32, cooldown=3, baseline=0)
    budget.record(2, 2, 0.01)
    budget.record(4, 1, 0.01)
    assert budget.length() == 1  # what was accepted
    budget.record(1, 0, 0.01)
    assert [budget.enabled for _ in range(4)] == [False, False, False, True]  # a pause of ``cooldown`` steps


def test_drafting_switches_off_when_rounds_are_slower_than_plain_steps() -> None:
    budget = DraftBudget(baseline=2, min_rounds=3)
    assert not budget.enabled and not budget.enabled  # the baseline: plain steps first
    budget.record(0, 0, 0.02)
    budget.record(0, 0, 0.02)  # plain: 50 tokens/s
    for _ in range(3):
        assert budget.enabled
        budget.record(4, 1, 0.1)  # 2 tokens in 0.1 s: 20 tokens/s
    assert not budget.enabled
