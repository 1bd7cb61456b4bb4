"""Brand checks on constructed images whose answers are known in advance."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from studio.editing.checks import (
    CheckResult,
    CheckThresholds,
    banned_terms,
    overlay_contrast,
    palette_adherence,
    product_fidelity,
    ssim,
    summarize,
)
from studio.editing.color import delta_e
from studio.editing.overlay import OverlaySpec, render_overlay
from studio.editing.safezones import safe_box

PALETTE = ["#1F3A93", "#F5A623", "#FAFAFA"]


def _flat(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.new("RGB", size, color)


def _halves(left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, :32], pixels[:, 32:] = left, right
    return Image.fromarray(pixels)


# --- palette adherence --------------------------------------------------------------------------


def test_an_image_that_is_exactly_a_palette_colour_has_delta_e_zero() -> None:
    result = palette_adherence(_flat((0x1F, 0x3A, 0x93)), PALETTE)
    assert (result.status, result.value) == ("pass", 0.0)
    assert result.numbers["worst_color"] == "#1F3A93" and result.numbers["worst_delta_e"] == 0.0


def test_palette_distance_is_the_share_weighted_mean_and_names_the_worst_colour() -> None:
    off = (0x1F, 0xA0, 0x93)  # a teal: far from every kit colour
    result = palette_adherence(_halves((0xF5, 0xA6, 0x23), off), PALETTE)
    expected_worst = min(delta_e("#1FA093", c) for c in PALETTE)
    assert result.numbers["worst_color"] == "#1FA093"
    assert result.numbers["worst_delta_e"] == pytest.approx(expected_worst)
    assert result.value == pytest.approx(0.5 * expected_worst)  # the other half is on-palette (0)
    assert result.numbers["worst_share"] == 0.5
    assert "worst #1FA093 (50% of the image)" in result.detail


def test_palette_status_bands() -> None:
    assert palette_adherence(_flat((255, 0, 0)), ["#0000FF"]).status == "fail"  # ΔE00 ≈ 52.9
    assert delta_e("#FF0000", "#0000FF") == pytest.approx(52.88, abs=0.01)
    assert palette_adherence(_flat((0x1F, 0x3A, 0x93)), ["#2F5AC0"]).status == "warn"
    assert 10 < delta_e("#1F3A93", "#2F5AC0") <= 20
    strict = CheckThresholds(palette_pass=5.0, palette_warn=8.0)
    assert palette_adherence(_flat((0x1F, 0x3A, 0x93)), ["#2F5AC0"], thresholds=strict).status == "fail"


def test_palette_check_counts_only_pixels_inside_the_mask() -> None:
    image = _halves((0x1F, 0x3A, 0x93), (255, 0, 255))  # on-palette left, magenta right
    background_only = np.zeros((64, 64), bool)
    background_only[:, :32] = True
    everything = palette_adherence(image, PALETTE)
    assert everything.value == pytest.approx(0.5 * min(delta_e("#FF00FF", c) for c in PALETTE))
    assert everything.status != "pass"
    assert palette_adherence(image, PALETTE, mask=background_only).value == 0.0


def test_no_palette_is_a_warning_without_a_number() -> None:
    result = palette_adherence(_flat((1, 2, 3)), [])
    assert (result.status, result.value) == ("warn", None)
    assert "no palette colours" in result.detail


# --- overlay contrast ---------------------------------------------------------------------------


def test_black_text_on_white_passes_at_21_through_the_real_overlay() -> None:
    rendered = render_overlay(_flat((255, 255, 255), (400, 400)), OverlaySpec(headline="Hi", text_color="#000"),
                              safe_box(None, 400, 400))  # fmt: skip
    result = overlay_contrast(rendered.contrast)
    assert (result.status, result.value) == ("pass", 21.0)


def test_contrast_bands_follow_wcag_aa_and_aa_large() -> None:
    warn = overlay_contrast({"headline": 7.0, "legal": 4.48})
    assert (warn.status, warn.value, warn.numbers["worst_text"]) == ("warn", 4.48, "legal")
    assert overlay_contrast({"cta": 2.9}).status == "fail"
    assert overlay_contrast({"cta": 4.5}).status == "pass"
    empty = overlay_contrast({})
    assert (empty.status, empty.value) == ("pass", None)


# --- banned terms -------------------------------------------------------------------------------


def test_banned_terms_fail_when_any_is_found() -> None:
    assert banned_terms([]).status == "pass"
    found = banned_terms(["cheapest", "guaranteed", "cheapest"])
    assert (found.status, found.value, found.numbers["terms"]) == ("fail", 2.0, ["cheapest", "guaranteed"])
    assert "'cheapest', 'guaranteed'" in found.detail


# --- SSIM and product fidelity ------------------------------------------------------------------


def _texture(seed: int = 1, size: int = 48) -> np.ndarray:
    """A smooth random texture (so a small shift changes it only a little)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 8, size // 8)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)).astype(
        np.float64
    )


def _ssim_brute_force(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM straight from the paper's definitions, one 11x11 Gaussian window at a time."""
    offsets = np.arange(11) - 5
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for row in range(x.shape[0] - 10):
        for col in range(x.shape[1] - 10):
            a, b = x[row : row + 11, col : col + 11], y[row : row + 11, col : col + 11]
            mu_a, mu_b = (window * a).sum(), (window * b).sum()
            var_a, var_b = (window * (a - mu_a) ** 2).sum(), (window * (b - mu_b) ** 2).sum()
            cov = (window * (a - mu_a) * (b - mu_b)).sum()
            values.append(
                ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
            )
    return float(np.mean(values))


def test_ssim_known_answers() -> None:
    texture = _texture()
    assert ssim(texture, texture) == 1.0
    c1 = (0.01 * 255) ** 2
    flat = ssim(np.full((20, 20), 100.0), np.full((20, 20), 110.0))  # σ = 0: only the luminance term
    assert flat == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), rel=1e-12)
    noisy = np.clip(texture + np.random.default_rng(2).normal(0, 20, texture.shape), 0, 255)
    assert ssim(texture, noisy) == pytest.approx(_ssim_brute_force(texture, noisy), abs=1e-9)


def test_ssim_falls_monotonically_with_noise_and_with_a_shift() -> None:
    texture, rng = _texture(), np.random.default_rng(3)
    unit_noise = rng.normal(0, 1, texture.shape)
    scores = [ssim(texture, np.clip(texture + sigma * unit_noise, 0, 255)) for sigma in (2, 5, 10, 20, 40)]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)) and scores[0] < 1.0
    shifted = [ssim(texture, np.roll(texture, shift, axis=1)) for shift in (1, 2, 4)]
    assert 1.0 > shifted[0] > shifted[1] > shifted[2]


def _product_scene(noise: float = 0.0) -> tuple[Image.Image, Image.Image]:
    """A 64x64 grey image with a textured 'product' square at 16..48, and its mask."""
    pixels = np.full((64, 64, 3), 128.0)
    pixels[16:48, 16:48] = _texture(5, 32)[..., None]
    if noise:
        pixels[16:48, 16:48] += np.random.default_rng(9).normal(0, noise, (32, 32, 1))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), Image.fromarray(mask)


def test_product_fidelity_of_identical_images_is_one_and_changes_outside_the_mask_do_not_count() -> None:
    master, mask = _product_scene()
    same = product_fidelity(master, master.copy(), mask)
    assert (same.status, same.value, same.numbers["max_abs_diff"]) == ("pass", 1.0, 0)
    assert same.numbers["box"] == [16, 16, 48, 48] and same.numbers["mask_pixels"] == 32 * 32
    repainted = np.asarray(master).copy()
    repainted[:8, :8] = (255, 0, 0)  # a new background, outside the product
    assert product_fidelity(master, Image.fromarray(repainted), mask).value == 1.0
    repainted[20, 20] = np.asarray(master)[20, 20].astype(int) + 37  # one product pixel changed by 37
    changed = product_fidelity(master, Image.fromarray(repainted), mask)
    assert changed.numbers["max_abs_diff"] == 37 and changed.value is not None and changed.value < 1.0


def test_product_fidelity_bands_as_the_product_degrades() -> None:
    master, mask = _product_scene()
    statuses = [product_fidelity(master, _product_scene(noise)[0], mask) for noise in (1, 10, 40)]
    values = [float(r.value or 0.0) for r in statuses]
    assert values[0] > values[1] > values[2]
    assert [r.status for r in statuses] == ["pass", "warn", "fail"], values


def test_product_fidelity_refusals_and_empty_mask() -> None:
    master, mask = _product_scene()
    with pytest.raises(ValueError, match="the variant is 32x32 but the master is 64x64"):
        product_fidelity(master, master.resize((32, 32)), mask)
    empty = product_fidelity(master, master, Image.new("L", (64, 64), 0))
    assert (empty.status, empty.value) == ("warn", None)
    tiny = np.zeros((64, 64), bool)
    tiny[60, 62] = True  # a one-pixel product in the corner: the box grows to a full window
    assert product_fidelity(master, master, tiny).numbers["box"] == [53, 53, 64, 64]


# --- thresholds and summary ----------------------------------------------------------------------


def test_thresholds_validate_from_kit_json_and_refuse_inverted_bands() -> None:
    assert CheckThresholds.model_validate({"contrast_pass": 7.0}).contrast_pass == 7.0
    with pytest.raises(ValidationError, match="palette: the pass threshold must be stricter"):
        CheckThresholds(palette_pass=25.0)
    with pytest.raises(ValidationError, match="fidelity: the pass threshold must be stricter"):
        CheckThresholds(fidelity_warn=0.95)
    with pytest.raises(ValidationError, match="extra"):
        CheckThresholds.model_validate({"palete_pass": 3})


def test_summary_is_the_worst_status() -> None:
    def result(status: str) -> CheckResult:
        return CheckResult(name=status, status=status, value=None, detail="")  # type: ignore[arg-type]

    assert summarize([]) == "pass"
    assert summarize([result("pass"), result("warn")]) == "warn"
    assert summarize([result("warn"), result("fail"), result("pass")]) == "fail"
