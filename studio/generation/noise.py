"""Initial latent noise with AUTOMATIC1111's seed controls (``modules/rng.py`` ``ImageRNG.first``).

- Seed: each image's noise comes from its own CPU ``torch.Generator`` seeded with its seed, so it
  depends only on the seed (and the size), never on the device or the batch.
- Variation seed / strength: noise = slerp(strength, noise(seed), noise(variation seed)); strength 0
  skips the variation entirely (identical to the seed alone), strength 1 gives exactly the variation
  seed's noise.
- Seed resize from ``W x H``: the seed's (and variation seed's) noise is made at the "from" size and
  placed centred into the seed's noise at the real size (cropped when the real size is smaller), so
  the same seed keeps its composition when the image size changes.

The per-image generators are returned too: ancestral samplers draw their later noise from them, and
they are advanced exactly as without any variation (A1111 does the same), so a variation only
changes the initial noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: A1111's slerp falls back to a linear mix when the two noises are this close to parallel.
PARALLEL_DOT = 0.9995


def seed_noise(seed: int, shape: tuple[int, ...], generator: Any = None) -> Any:
    """Standard normal noise of ``shape`` from a CPU generator seeded with ``seed`` (float32)."""
    import torch

    if generator is None:
        generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def slerp(val: float, low: Any, high: Any) -> Any:
    """A1111's ``rng.slerp`` on one image's (C, H, W) noise: norms and dots along dim 1, as A1111 does.

    (A1111's near-parallel fallback mixes the wrong way round; it only triggers for equal noises,
    where both ways agree. This one mixes the right way.)
    """
    import torch

    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > PARALLEL_DOT:
        return low * (1.0 - val) + high * val
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def paste_centred(target: Any, source: Any) -> Any:
    """``target`` with ``source`` placed centred on it (both (C, H, W)); the overlap comes from
    ``source``'s centre when it is larger. Offsets as A1111 computes them."""
    dx = (target.shape[2] - source.shape[2]) // 2
    dy = (target.shape[1] - source.shape[1]) // 2
    w = source.shape[2] if dx >= 0 else source.shape[2] + 2 * dx
    h = source.shape[1] if dy >= 0 else source.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    out = target.clone()
    out[:, ty : ty + h, tx : tx + w] = source[:, sy : sy + h, sx : sx + w]
    return out


def initial_noise(
    shape: tuple[int, int, int],
    seeds: Sequence[int],
    *,
    subseeds: Sequence[int] = (),
    subseed_strength: float = 0.0,
    resize_from: tuple[int, int] | None = None,
    factor: int = 8,
) -> tuple[Any, list[Any]]:
    """The (batch, C, H, W) float32 CPU noise for ``seeds`` and each image's generator.

    ``shape`` is one image's latent shape; ``resize_from`` is (width, height) in pixels, divided by
    the VAE ``factor``; image ``i`` uses ``subseeds[i]`` (0 if missing, as A1111).
    """
    import torch

    from_shape = shape if resize_from is None else (shape[0], resize_from[1] // factor, resize_from[0] // factor)
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    images = []
    for i, (seed, generator) in enumerate(zip(seeds, generators, strict=True)):
        noise = seed_noise(seed, shape, generator) if from_shape == shape else seed_noise(seed, from_shape)
        if subseed_strength != 0:
            subseed = subseeds[i] if i < len(subseeds) else 0
            noise = slerp(subseed_strength, noise, seed_noise(subseed, from_shape))
        if from_shape != shape:
            noise = paste_centred(seed_noise(seed, shape, generator), noise)
        images.append(noise)
    return torch.stack(images), generators
