"""The built-in models, both SD-1.x-architecture pipelines that work fully offline:

- ``builtin:demo`` (the default): a tiny model trained from scratch on CPU by ``python -m
  training.demo_build``; its weights are committed under ``studio/builtin_models/demo`` (an ordinary
  diffusers folder of ``.safetensors`` files with a model card). It draws simple objects in named
  colours on named backgrounds and follows prompts, so training and editing show real behaviour.
- ``builtin:tiny``: built deterministically from config with random weights; it draws placeholders
  (coloured noise). It keeps unit tests fast. It is written once as a diffusers folder of
  ``.safetensors`` files.

Both are then loaded through exactly the same code path as any real model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from training.demo_build import SCHEDULER_CONFIG, bytes_to_unicode  # shared with the demo model

logger = logging.getLogger(__name__)

BUILTIN_TINY = "builtin:tiny"
BUILTIN_DEMO = "builtin:demo"
#: The committed demo model (rebuild: ``make demo-model``).
DEMO_FOLDER = Path(__file__).resolve().parent / "builtin_models" / "demo"
#: Bump when the recipe below changes: the folder name carries it, so old copies are never reused.
BUILD_VERSION = 1
SEED = 1234

UNET_CONFIG = {
    "sample_size": 16,  # 16 latents * vae factor 8 = 128 px default size
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
# Four blocks give the same 8x spatial factor as SD 1.x, so sizes behave like a real model's.
VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 16, 32, 32),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 128,
    "scaling_factor": 0.18215,
}
TEXT_CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 5,
    "max_position_embeddings": 77,
    "layer_norm_eps": 1e-05,
    "projection_dim": 32,
}
MODEL_CARD = """# Brand Studio built-in tiny model (placeholder)

An SD-1.x-architecture pipeline (UNet2DConditionModel, AutoencoderKL, CLIPTextModel and a byte-level
CLIP tokenizer) built from config with random weights (seed {seed}, build {version}).
It draws coloured noise: use it to try the studio offline and to run tests, not for real images.
Set `BRAND_STUDIO_BASE_MODEL` to a real model (hub id, local diffusers folder or single-file
`.safetensors` checkpoint) for real images.
"""


def tokenizer_vocab() -> tuple[dict[str, int], list[str]]:
    """A byte-level CLIP vocabulary: every byte alone and as a word end, plus the two specials.

    No merges: every prompt is tokenized character by character, which is enough for a model that
    draws placeholders and keeps the tokenizer small and fully local.
    """
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, []


def builtin_folder(models_dir: Path) -> Path:
    return models_dir / f"builtin-tiny-v{BUILD_VERSION}"


def build_components(seed: int = SEED) -> dict[str, object]:
    """Build the pipeline components deterministically (same seed -> same weights)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = tokenizer_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 77
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**VAE_CONFIG)
    torch.manual_seed(seed + 2)
    text_config = CLIPTextConfig(
        vocab_size=len(vocab),
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
        **TEXT_CONFIG,
    )
    text_encoder = CLIPTextModel(text_config)
    scheduler = DDIMScheduler(**SCHEDULER_CONFIG)
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def materialize_builtin(models_dir: Path) -> Path:
    """Write the built-in model once under ``models_dir`` (atomically) and return its folder."""
    target = builtin_folder(models_dir)
    if (target / "model_index.json").is_file():
        return target
    from diffusers import StableDiffusionPipeline

    models_dir.mkdir(parents=True, exist_ok=True)
    logger.info("building the built-in tiny model into %s", target)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=models_dir))
    try:
        pipe = StableDiffusionPipeline(
            **build_components(),  # type: ignore[arg-type]
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(staging, safe_serialization=True)
        (staging / "README.md").write_text(MODEL_CARD.format(seed=SEED, version=BUILD_VERSION))
        (staging / "brand_studio_model.json").write_text(
            json.dumps({"ref": BUILTIN_TINY, "build_version": BUILD_VERSION, "seed": SEED, "demo": True})
        )
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "model_index.json").is_file():  # lost a race only if the other side won
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
