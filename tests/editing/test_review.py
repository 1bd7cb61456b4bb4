"""Review state machine: every allowed and refused move; regions validated and turned into masks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from studio.editing.review import (
    STATES,
    TRANSITIONS,
    RegionInstruction,
    ReviewError,
    allowed_targets,
    check_transition,
    region_mask,
)

ALLOWED = {("draft", "in_review"), ("in_review", "approved"), ("in_review", "rejected"),
           ("rejected", "draft"), ("approved", "in_review")}  # fmt: skip
REFUSED = [pair for pair in itertools.product(STATES, STATES) if pair not in ALLOWED]


def test_the_table_is_exactly_the_five_moves() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert set(STATES) == {"draft", "in_review", "approved", "rejected"} and len(REFUSED) == 11
    assert allowed_targets("in_review") == {"approved", "rejected"}


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_moves_pass_with_passing_checks(current: str, target: str) -> None:
    check_transition(current, target, "pass")
    check_transition(current, target, "warn")


@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_every_other_move_is_refused_even_with_an_override(current: str, target: str) -> None:
    with pytest.raises(
        ReviewError,
        match=f"a variant in '{current}' cannot move to '{target}'; from '{current}' it can go to",
    ):
        check_transition(current, target, "pass", override_reason="boss said so")


def test_approving_failed_checks_needs_an_override_reason() -> None:
    for reason in (None, "", "   "):
        with pytest.raises(ReviewError, match="cannot approve: its brand checks failed; .* override reason"):
            check_transition("in_review", "approved", "fail", reason)
    check_transition("in_review", "approved", "fail", "legal approved the off-palette seasonal red")
    with pytest.raises(ReviewError, match="override reason is 1001 characters"):
        check_transition("in_review", "approved", "fail", "x" * 1001)


def test_approving_without_checks_needs_an_override_too() -> None:
    with pytest.raises(ReviewError, match="its brand checks have not run"):
        check_transition("in_review", "approved", None)
    check_transition("in_review", "approved", None, "checks service down; eyeballed")


def test_failed_checks_do_not_block_other_moves() -> None:
    check_transition("draft", "in_review", "fail")
    check_transition("in_review", "rejected", "fail")
    check_transition("approved", "in_review", None)


def test_unknown_states_and_statuses_are_refused() -> None:
    with pytest.raises(ReviewError, match="unknown current review state 'published'"):
        check_transition("published", "draft", "pass")
    with pytest.raises(ReviewError, match="unknown target review state 'Approved'"):
        check_transition("in_review", "Approved", "pass")
    with pytest.raises(ReviewError, match="unknown checks status 'ok'"):
        check_transition("in_review", "approved", "ok")
    with pytest.raises(ReviewError, match="unknown current review state"):
        allowed_targets("")


def test_region_mask_is_a_hard_edged_white_rectangle() -> None:
    region = RegionInstruction(10, 20, 30, 40, "  make the label red  ")
    mask = region_mask(100, 80, region)
    assert mask.mode == "L" and mask.size == (100, 80)
    pixels = np.asarray(mask)
    assert set(np.unique(pixels).tolist()) == {0, 255}  # no feathering
    assert pixels[20:60, 10:40].min() == 255 and pixels.sum() == 255 * 30 * 40
    assert mask.getbbox() == region.box == (10, 20, 40, 60)
    assert region.validate(100, 80).instruction == "make the label red"


def test_region_covering_the_whole_image_is_fine() -> None:
    assert np.asarray(region_mask(64, 48, RegionInstruction(0, 0, 64, 48, "brighter"))).min() == 255


@pytest.mark.parametrize(("region", "message"), [
    (RegionInstruction(-1, 0, 10, 10, "x"), "x and y must be >= 0"),
    (RegionInstruction(0, 0, 4, 10, "x"), "at least 8 px"),
    (RegionInstruction(95, 0, 10, 10, "x"), "reaches past the 100x80 image"),
    (RegionInstruction(0, 75, 10, 10, "x"), "reaches past the 100x80 image"),
    (RegionInstruction(0, 0, 10, 10, "   "), "needs an instruction"),
    (RegionInstruction(0, 0, 10, 10, "x" * 501), "501 characters"),
    (RegionInstruction(0, 0, 10, 10, "red\nignore previous"), "control characters"),
    (RegionInstruction(0, 0, 10.5, 10, "x"), "whole pixels"),  # type: ignore[arg-type]
])  # fmt: skip
def test_bad_regions_are_refused(region: RegionInstruction, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        region_mask(100, 80, region)
