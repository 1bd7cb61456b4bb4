"""The UNet's inputs for a batch: VAE latents, text-encoder outputs and loss masks, cached or not.

Caching (``cache_latents``, ``cache_text_embeddings``): before the loop, every caption is encoded once
and every image variant is encoded once -- one variant per image with a centre crop, two when
``random_flip`` is on (the latents of a mirrored image are not the mirrored latents, so both are
encoded). Then the models no longer needed are released (moved off the GPU, dropped, memory
returned). Random crops (``center_crop`` false) pick a new offset every epoch, so there is no finite
set of variants to cache: latent caching then switches itself off for the run with a warning (text
embeddings are still cached) and ``ss_cache_latents`` says "False".

Cached and uncached runs give the same inputs: the VAE's latent sample for a variant is drawn from a
generator seeded by the run seed and the variant (image, size, crop, flip), never from the global
RNG, so encoding once or every step yields the same latents and leaves the global RNG (noise,
timesteps) in the same state.
"""

from __future__ import annotations

import gc
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from training.dataset import TrainingImages, Variant

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    latents: torch.Tensor  #: (B, C, h, w), scaled by the VAE's scaling factor
    encoder_hidden_states: torch.Tensor  #: (B, tokens, dim)
    mask: torch.Tensor | None  #: (B, 1, H, W) pixel-resolution loss weights, None = all ones


class TrainInputs:
    """Builds ``Batch``es for lists of example indices in a given epoch."""

    def __init__(self, images: TrainingImages, parts: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.images = images
        self.parts = parts
        self.device = device
        self.dtype = dtype
        self.latent_cache: dict[Variant, torch.Tensor] | None = None
        self.mask_cache: dict[Variant, torch.Tensor | None] | None = None
        self.text_cache: dict[str, torch.Tensor] | None = None

    @property
    def caches_latents(self) -> bool:
        return self.latent_cache is not None

    def build_caches(self, *, latents: bool, text: bool) -> None:
        """Encode what is asked for once, then release the models nobody needs any more."""
        if latents and not self.images.deterministic:
            logger.warning(
                "cache_latents is off for this run: center_crop is false, so every epoch crops the "
                "images differently and there is no fixed set of latents to cache; "
                "set center_crop true to cache them"
            )
            latents = False
        with torch.no_grad():
            if latents:
                variants = [v for i in range(len(self.images)) for v in self.images.fixed_variants(i)]
                self.latent_cache = {v: self._encode([v])[0] for v in variants}
                self.mask_cache = {v: self._mask(v) for v in variants}
            if text:
                captions = sorted({e.caption for e in self.images.examples})
                self.text_cache = {c: self._encode_text([c])[0] for c in captions}
        logger.info(
            "cached %d latents and %d caption embeddings",
            len(self.latent_cache or {}), len(self.text_cache or {}),
        )  # fmt: skip
        release_models(self.parts, vae=latents, text_encoder=text)

    def batch(self, indices: list[int], epoch: int) -> Batch:
        variants = [self.images.variant(i, epoch) for i in indices]
        with torch.no_grad():
            if self.latent_cache is not None and self.mask_cache is not None:
                latents = torch.stack([self.latent_cache[v] for v in variants])
                masks = [self.mask_cache[v] for v in variants]
            else:
                latents = self._encode(variants)
                masks = [self._mask(v) for v in variants]
            captions = [self.images.examples[i].caption for i in indices]
            if self.text_cache is not None:
                hidden = torch.stack([self.text_cache[c] for c in captions])
            else:
                hidden = self._encode_text(captions)
        return Batch(latents, hidden, _stack_masks(masks, latents))

    def _encode(self, variants: list[Variant]) -> torch.Tensor:
        vae = self.parts.vae
        pixels = torch.stack([self.images.pixels(v) for v in variants])
        dist = vae.encode(pixels.to(self.device, dtype=self.dtype)).latent_dist
        eps = torch.stack(
            [
                torch.randn(dist.mean.shape[1:], generator=_variant_generator(self.images.seed, v))
                for v in variants
            ]
        ).to(self.device, dtype=dist.mean.dtype)
        return ((dist.mean + dist.std * eps) * vae.config.scaling_factor).contiguous()

    def _encode_text(self, captions: list[str]) -> torch.Tensor:
        tokenizer = self.parts.tokenizer
        input_ids = tokenizer(
            captions,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        return self.parts.text_encoder(input_ids, return_dict=False)[0]

    def _mask(self, variant: Variant) -> torch.Tensor | None:
        mask = self.images.mask(variant)
        return None if mask is None else mask.to(self.device)


def _stack_masks(masks: list[torch.Tensor | None], latents: torch.Tensor) -> torch.Tensor | None:
    """One ``(B, 1, H, W)`` weight tensor; images without a mask weigh 1 everywhere."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    ones = torch.ones_like(present[0])
    return torch.stack([ones if m is None else m for m in masks]).to(latents.device)


def _variant_generator(seed: int, variant: Variant) -> torch.Generator:
    key = f"{seed}:latent:{variant.index}:{variant.width}x{variant.height}:{variant.left}:{variant.top}:{variant.flip}"
    return torch.Generator().manual_seed(int(hashlib.sha256(key.encode()).hexdigest()[:15], 16))


def release_models(parts: Any, *, vae: bool, text_encoder: bool) -> None:
    """Drop the VAE and/or text encoder from ``parts``: off the GPU, unreferenced, memory returned."""
    names = [name for name, wanted in (("vae", vae), ("text_encoder", text_encoder)) if wanted]
    for name in names:
        module = getattr(parts, name)
        if module is not None and next(module.parameters()).device.type != "cpu":
            module.to("cpu")
        setattr(parts, name, None)
        del module
    if names:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        logger.info("released %s", " and ".join(names))
