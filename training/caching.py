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

SDXL (``parts.family == "sdxl"``) conditions on what diffusers' ``StableDiffusionXLPipeline.encode_prompt``
computes (clip_skip None): the penultimate hidden states of both text encoders concatenated along the
feature axis, and the second encoder's pooled, projected ``text_embeds``; plus per-example size
conditioning (``TrainingImages.add_time_ids``). Both encoders are cached and released alike. Its VAE may
run in float32 while the rest is in float16 (``force_upcast``); latents are cast to the run's dtype.

A trained text encoder (``train_text_encoders``: the accelerate-prepared encoders carrying a LoRA)
encodes every batch's captions with gradients; its outputs are never cached.
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
    pooled_embeds: torch.Tensor | None = None  #: SDXL: (B, projection_dim) pooled text embeddings
    time_ids: torch.Tensor | None = None  #: SDXL: (B, 6) float32 size conditioning (add_time_ids)


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
        self.pooled_cache: dict[str, torch.Tensor] | None = None  #: SDXL's pooled embeddings
        #: the trained (prepared) text encoders, (first, second or None); None = the frozen ones
        self.trained_encoders: tuple[Any, Any] | None = None

    @property
    def caches_latents(self) -> bool:
        return self.latent_cache is not None

    def train_text_encoders(self, first: Any, second: Any = None) -> None:
        """Encode captions with these (prepared, trainable) encoders, with gradients, from now on."""
        if self.text_cache is not None:
            raise ValueError("caption embeddings are cached; a trained text encoder needs them uncached")
        self.trained_encoders = (first, second)

    def build_caches(self, *, latents: bool, text: bool, release: bool = True) -> None:
        """Encode what is asked for once, then (``release``) release the models nobody needs any more."""
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
                encoded = {c: self._encode_text([c]) for c in captions}
                self.text_cache = {c: hidden[0] for c, (hidden, _) in encoded.items()}
                if self.sdxl:
                    self.pooled_cache = {
                        c: pooled[0] for c, (_, pooled) in encoded.items() if pooled is not None
                    }
        logger.info(
            "cached %d latents and %d caption embeddings",
            len(self.latent_cache or {}), len(self.text_cache or {}),
        )  # fmt: skip
        if release:
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
                pooled = torch.stack([self.pooled_cache[c] for c in captions]) if self.pooled_cache else None
            elif self.trained_encoders is None:
                hidden, pooled = self._encode_text(captions)
        if self.trained_encoders is not None:
            hidden, pooled = self._encode_text(captions, self.trained_encoders)
        batch = Batch(latents, hidden, _stack_masks(masks, latents))
        if self.sdxl:
            batch.pooled_embeds = pooled
            batch.time_ids = self._time_ids(variants)
        return batch

    @property
    def sdxl(self) -> bool:
        return getattr(self.parts, "family", "sd1") == "sdxl"

    def _encode(self, variants: list[Variant]) -> torch.Tensor:
        """Scaled latent samples of ``variants`` in the run's dtype (the VAE may run in float32)."""
        vae = self.parts.vae
        pixels = torch.stack([self.images.pixels(v) for v in variants])
        dist = vae.encode(pixels.to(self.device, dtype=vae.dtype)).latent_dist
        eps = torch.stack(
            [
                torch.randn(dist.mean.shape[1:], generator=_variant_generator(self.images.seed, v))
                for v in variants
            ]
        ).to(self.device, dtype=dist.mean.dtype)
        return ((dist.mean + dist.std * eps) * vae.config.scaling_factor).to(self.dtype).contiguous()

    def _encode_text(
        self, captions: list[str], encoders: tuple[Any, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(encoder_hidden_states, pooled)``: SD-1.x's last hidden state and None, or SDXL's pair.

        ``encoders`` replaces the parts' text encoders (the trained, prepared ones).
        """
        text_encoder, text_encoder_2 = encoders or (self.parts.text_encoder, self.parts.text_encoder_2)
        ids = self._token_ids(self.parts.tokenizer, captions)
        if not self.sdxl:
            return text_encoder(ids, return_dict=False)[0], None
        first = text_encoder(ids, output_hidden_states=True)
        ids_2 = self._token_ids(self.parts.tokenizer_2, captions)
        second = text_encoder_2(ids_2, output_hidden_states=True)
        hidden = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
        return hidden, second[0]  # second[0]: the projected pooled output, ``text_embeds``

    def _token_ids(self, tokenizer: Any, captions: list[str]) -> torch.Tensor:
        return tokenizer(
            captions,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)

    def _time_ids(self, variants: list[Variant]) -> torch.Tensor:
        """SDXL's ``add_time_ids`` of ``variants``: float32 ``(B, 6)`` (exact for any pixel size)."""
        rows = [self.images.add_time_ids(v) for v in variants]
        return torch.tensor(rows, dtype=torch.float32, device=self.device)

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
    """Drop the VAE and/or the text encoder(s) from ``parts``: off the GPU, unreferenced, memory returned.

    ``text_encoder`` releases SDXL's ``text_encoder_2`` too.
    """
    wanted = (("vae", vae), ("text_encoder", text_encoder), ("text_encoder_2", text_encoder))
    names = [name for name, on in wanted if on and getattr(parts, name, None) is not None]
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
