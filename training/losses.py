"""The denoising loss of one micro-batch: noise (with optional offset), timesteps, UNet, weighting.

- Target: the noise (``epsilon`` schedulers) or the velocity (``v_prediction``).
- ``noise_offset`` (Crosslabs' "offset noise", kohya ``--noise_offset``): adds
  ``noise_offset * N(0, 1)`` per sample and channel, constant over the image, so the model also
  learns to shift overall brightness. The extra draw happens only when the offset is > 0.
- Masks: the squared error of each latent pixel is weighted by the mask area-averaged down to the
  latent size, and each sample's loss is the weighted *mean* (sum of weighted errors / sum of
  weights), so a mask covering half the picture gives that half's loss, not half of it.
- ``min_snr_gamma`` (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting"):
  each sample's loss is multiplied by ``min(SNR(t), gamma) / SNR(t)`` for epsilon targets and by
  ``min(SNR(t), gamma) / (SNR(t) + 1)`` for v targets, with ``SNR(t) = abar_t / (1 - abar_t)``
  (the diffusers and kohya scripts' formulas).

SDXL's UNet also takes ``added_cond_kwargs`` (pooled text embeddings and size ``time_ids``); they are
passed when given and change nothing else.

Random draws (``randn`` for the noise and offset, ``randint`` for the timesteps) use torch's
global generator, which accelerate's checkpoints save and restore -- or the caller's ``generator``
(prior preservation's class batches, which must not shift the instance batches' draws).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

#: A sample whose mask weights sum to less than this contributes nothing (instead of dividing by 0).
_MIN_WEIGHT = 1e-8


def min_snr_weights(
    alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, prediction_type: str
) -> torch.Tensor:
    """Per-sample min-SNR loss weights for ``timesteps``."""
    abar = alphas_cumprod.to(device=timesteps.device, dtype=torch.float32)[timesteps]
    snr = abar / (1.0 - abar)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1.0) if prediction_type == "v_prediction" else clipped / snr


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-sample mean squared error ``(B,)``; with ``mask`` ``(B, 1, H, W)`` a weighted mean.

    ``mask`` may be larger than the prediction (pixel resolution): it is area-averaged down.
    """
    squared = (prediction.float() - target.float()) ** 2
    if mask is None:
        return squared.mean(dim=(1, 2, 3))
    weights = F.interpolate(mask.float(), size=squared.shape[-2:], mode="area")
    weighted = (squared * weights).sum(dim=(1, 2, 3))
    total = weights.sum(dim=(1, 2, 3)) * squared.shape[1]
    return weighted / total.clamp_min(_MIN_WEIGHT)


def noise_loss(
    unet: Any,
    noise_scheduler: Any,
    latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    noise_offset: float = 0.0,
    min_snr_gamma: float | None = None,
    pooled_embeds: torch.Tensor | None = None,
    time_ids: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The scalar training loss of one micro-batch (mean over its samples).

    ``pooled_embeds`` and ``time_ids`` (SDXL) go to the UNet as ``added_cond_kwargs``. ``generator``
    (on the latents' device) draws the noise and timesteps instead of torch's global generator.
    """
    # Not randn_like: it follows the input's memory layout, so equal latents with other strides
    # (a VAE output is a strided view) would get their noise values in another order.
    noise = torch.randn(latents.shape, device=latents.device, dtype=latents.dtype, generator=generator)
    if noise_offset > 0:
        shape = (latents.shape[0], latents.shape[1], 1, 1)
        offset = torch.randn(shape, device=latents.device, dtype=latents.dtype, generator=generator)
        noise = noise + noise_offset * offset
    num_timesteps = noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(
        0, num_timesteps, (latents.shape[0],), device=latents.device, generator=generator
    ).long()
    noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    extra: dict[str, Any] = {}
    if pooled_embeds is not None or time_ids is not None:
        extra["added_cond_kwargs"] = {"text_embeds": pooled_embeds, "time_ids": time_ids}
    prediction = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False, **extra)[0]
    per_sample = masked_mse(prediction, target, mask)
    if min_snr_gamma is not None:
        weights = min_snr_weights(noise_scheduler.alphas_cumprod, timesteps, min_snr_gamma, prediction_type)
        per_sample = per_sample * weights
    return per_sample.mean()
