"""The review state machine as data, and reviewer-marked regions that become inpaint variants.

States: draft -> in_review -> approved / rejected; rejected -> draft (rework); approved -> in_review
(reopen). :func:`check_transition` refuses any other move, and refuses to approve a variant whose brand
checks failed (or were never run) unless an override reason is given; the facade records that reason
with the reviewer and the time.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal, get_args

from PIL import Image, ImageDraw

ReviewState = Literal["draft", "in_review", "approved", "rejected"]
ChecksStatus = Literal["pass", "warn", "fail"]
STATES: tuple[str, ...] = get_args(ReviewState)
CHECK_STATUSES: tuple[str, ...] = get_args(ChecksStatus)
#: state -> the states it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"in_review"}),
    "in_review": frozenset({"approved", "rejected"}),
    "rejected": frozenset({"draft"}),
    "approved": frozenset({"in_review"}),
}
INSTRUCTION_MAX = 500
REGION_MIN_SIDE = 8  #: smaller regions give the inpaint model nothing to work with
OVERRIDE_MAX = 1000


class ReviewError(ValueError):
    """A review action that is not allowed, or a region that does not fit the image."""


def allowed_targets(current: str) -> frozenset[str]:
    """The states a variant in ``current`` may move to."""
    _check_state(current, "current")
    return TRANSITIONS[current]


def check_transition(
    current: str, target: str, checks_status: str | None, override_reason: str | None = None
) -> None:
    """None when moving ``current`` -> ``target`` is allowed; :class:`ReviewError` saying why not.

    ``checks_status``: the variant's overall brand-check status ("pass", "warn", "fail") or None when
    the checks have not run. Approving needs "pass" or "warn", or a non-empty ``override_reason``.
    """
    _check_state(current, "current")
    _check_state(target, "target")
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current]))
        raise ReviewError(
            f"a variant in {current!r} cannot move to {target!r}; from {current!r} it can go to: {allowed}"
        )
    if checks_status is not None and checks_status not in CHECK_STATUSES:
        raise ReviewError(
            f"unknown checks status {checks_status!r}; expected one of {', '.join(CHECK_STATUSES)}"
        )
    if target != "approved" or checks_status in ("pass", "warn"):
        return
    reason = (override_reason or "").strip()
    if not reason:
        why = "its brand checks failed" if checks_status == "fail" else "its brand checks have not run"
        raise ReviewError(
            f"cannot approve: {why}; fix the variant, or approve with an override reason that will be recorded"
        )
    if len(reason) > OVERRIDE_MAX:
        raise ReviewError(f"the override reason is {len(reason)} characters; keep it under {OVERRIDE_MAX}")


@dataclass(frozen=True)
class RegionInstruction:
    """A reviewer's rectangle (pixels, top-left origin) on a variant, and what to change inside it."""

    x: int
    y: int
    w: int
    h: int
    instruction: str

    def validate(self, width: int, height: int) -> RegionInstruction:
        """This region, checked against a ``width`` x ``height`` image; the instruction stripped."""
        values = (self.x, self.y, self.w, self.h)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ReviewError(f"region x, y, w, h must be whole pixels, got {values}")
        if self.x < 0 or self.y < 0 or self.w < REGION_MIN_SIDE or self.h < REGION_MIN_SIDE:
            raise ReviewError(
                f"region at ({self.x}, {self.y}) size {self.w}x{self.h}: x and y must be >= 0 and each side "
                f"at least {REGION_MIN_SIDE} px"
            )
        if self.x + self.w > width or self.y + self.h > height:
            raise ReviewError(
                f"region ({self.x}, {self.y}) + {self.w}x{self.h} reaches past the {width}x{height} image; "
                "mark a region inside the image"
            )
        text = self.instruction.strip()
        if not text:
            raise ReviewError("the region needs an instruction: say what to change inside it")
        if len(text) > INSTRUCTION_MAX:
            raise ReviewError(f"the instruction is {len(text)} characters; keep it under {INSTRUCTION_MAX}")
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise ReviewError(
                "the instruction contains control characters (tabs, line breaks); write one line"
            )
        return RegionInstruction(self.x, self.y, self.w, self.h, text)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), right/bottom exclusive."""
        return (self.x, self.y, self.x + self.w, self.y + self.h)


def region_mask(width: int, height: int, region: RegionInstruction) -> Image.Image:
    """An 'L' mask of the image size: 255 inside the (validated) region, 0 outside, no feathering."""
    region = region.validate(width, height)
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle(
        (region.x, region.y, region.x + region.w - 1, region.y + region.h - 1), fill=255
    )
    return mask


def _check_state(state: str, which: str) -> None:
    if state not in TRANSITIONS:
        raise ReviewError(f"unknown {which} review state {state!r}; expected one of {', '.join(STATES)}")
