"""A tiny SDXL pipeline for tests: real diffusers/transformers components built from config.

``write_tiny_sdxl(folder)`` writes an ordinary ``StableDiffusionXLPipeline`` folder of safetensors:
a two-level UNet with SDXL's "text_time" conditioning (pooled text + six size ids), two small CLIP
text encoders of different widths (the second with a projection), the byte-level CLIP tokenizer of
the built-in tiny SD-1.x model (twice), a small 8x VAE with ``force_upcast`` and SDXL's Euler
scheduler settings. Weights are random but fixed (torch seeds), so the same folder is written every
time. A 64 px training step takes a fraction of a second on one CPU thread.
"""

from __future__ import annotations

from pathlib import Path

SEED = 4321
TEXT_1 = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 3}
TEXT_2 = {"hidden_size": 48, "intermediate_size": 53, "num_attention_heads": 4, "num_hidden_layers": 3}
PROJECTION_DIM = 16
TIME_EMBED_DIM = 8
UNET_CONFIG = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": 1,
    "attention_head_dim": (2, 4),
    "norm_num_groups": 32,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": TIME_EMBED_DIM,
    "cross_attention_dim": TEXT_1["hidden_size"] + TEXT_2["hidden_size"],
    "projection_class_embeddings_input_dim": 6 * TIME_EMBED_DIM + PROJECTION_DIM,
}
VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 16, 32, 32),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 64,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}
#: SDXL base's scheduler settings (EulerDiscreteScheduler, epsilon, scaled_linear, "leading").
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
    "timestep_spacing": "leading",
    "steps_offset": 1,
}


def _text_encoder(cls: type, vocab: dict[str, int], seed: int, **config: object) -> object:
    import torch
    from transformers import CLIPTextConfig

    torch.manual_seed(seed)
    text_config = CLIPTextConfig(
        vocab_size=len(vocab),
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
        max_position_embeddings=77,
        layer_norm_eps=1e-05,
        projection_dim=PROJECTION_DIM,
        **config,  # type: ignore[arg-type]
    )
    return cls(text_config).eval()


def build_tiny_sdxl(seed: int = SEED) -> object:
    """The tiny ``StableDiffusionXLPipeline`` (same seed -> same weights)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from studio.builtin_model import tokenizer_vocab  # the tiny SD-1.x model's byte-level tokenizer

    vocab, merges = tokenizer_vocab()
    tokenizers = [CLIPTokenizer(vocab=vocab, merges=merges) for _ in range(2)]
    for tokenizer in tokenizers:
        tokenizer.model_max_length = 77
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()  # type: ignore[arg-type]
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**VAE_CONFIG).eval()  # type: ignore[arg-type]
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=_text_encoder(CLIPTextModel, vocab, seed + 2, **TEXT_1),  # type: ignore[arg-type]
        text_encoder_2=_text_encoder(CLIPTextModelWithProjection, vocab, seed + 3, **TEXT_2),  # type: ignore[arg-type]
        tokenizer=tokenizers[0],
        tokenizer_2=tokenizers[1],
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),  # type: ignore[arg-type]
    )


def write_tiny_sdxl(folder: Path) -> Path:
    """Write the tiny SDXL pipeline into ``folder`` (created; safetensors only) and return ``folder``.

    ``StableDiffusionXLPipeline.from_pretrained(folder)`` loads it, and so does the trainer.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_sdxl().save_pretrained(folder, safe_serialization=True)  # type: ignore[attr-defined]
    return folder
