"""Training configuration: one dataclass, validated before any model is loaded.

This module stays light (no torch): the studio validates configs in its API process.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from training.family import model_family

#: UNet layers LoRA is attached to by default: the attention projections of every transformer block
#: (``attn1`` self- and ``attn2`` cross-attention), the transformer's in/out projections and
#: feed-forward, and the ResNet convolutions ("LoCon"-style). Names are matched by peft as a suffix
#: of the module path, so they hit the same layers in the tiny built-in UNet and in SD-1.5's UNet.
DEFAULT_TARGET_MODULES: tuple[str, ...] = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
)

OptimizerName = Literal["adamw8bit", "adamw", "adafactor"]
MixedPrecision = Literal["no", "fp16", "bf16"]

#: Header keys that ``save_lora`` writes itself; a caller may not supply them.
RESERVED_METADATA_KEYS = frozenset(
    {"format", "lora_adapter_metadata", "sshs_model_hash", "sshs_legacy_hash", "modelspec.hash_sha256"}
)
#: Sub-folders a diffusers SD-1.x folder must have for training.
MODEL_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
#: Sub-folders a diffusers SDXL (``StableDiffusionXLPipeline``) folder must have for training.
SDXL_SUBFOLDERS = (*MODEL_SUBFOLDERS, "text_encoder_2", "tokenizer_2")
_OUTPUT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class TrainConfigError(ValueError):
    """The training config (or the files it points at) cannot be used.

    ``problems`` maps each offending field name to what is wrong with it.
    """

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        lines = "; ".join(f"{name}: {message}" for name, message in self.problems.items())
        super().__init__(f"invalid training config: {lines}")


@dataclass
class TrainConfig:
    pretrained_model: str
    data_dir: str
    output_dir: str
    output_name: str = "lora"
    resolution: int = 512
    train_batch_size: int = 1
    max_train_steps: int = 100
    learning_rate: float = 1e-4
    rank: int = 4
    alpha: float = 4.0
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    optimizer: OptimizerName = "adamw8bit"
    seed: int = 0
    mixed_precision: MixedPrecision = "no"
    gradient_accumulation_steps: int = 1
    lr_warmup_steps: int = 0
    max_grad_norm: float = 1.0
    center_crop: bool = True
    random_flip: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    # -- speed and memory (caching.py) ----------------------------------------------------------
    cache_latents: bool = True  #: off by itself (with a warning) when center_crop is false
    cache_text_embeddings: bool = True
    gradient_checkpointing: bool = False
    # -- aspect-ratio buckets (buckets.py); None = resolution // 2 and resolution * 2 ------------
    enable_bucket: bool = True
    min_bucket_reso: int | None = None
    max_bucket_reso: int | None = None
    bucket_reso_steps: int = 64
    # -- loss (losses.py) ------------------------------------------------------------------------
    min_snr_gamma: float | None = None
    noise_offset: float = 0.0
    masked_loss: bool = False  #: weight the loss by ``<stem>.mask.png`` (white = product)
    # -- checkpoints (checkpoints.py) ------------------------------------------------------------
    checkpointing_steps: int = 0  #: 0 = no checkpoints
    checkpoints_total_limit: int = 2
    resume_from: str | None = None  #: "latest" or a checkpoint folder
    # -- outputs ---------------------------------------------------------------------------------
    export_kohya: bool = True  #: also write ``<output_name>.kohya.safetensors`` (kohya key names)
    # -- text-encoder LoRA (text_encoder.py); None = the UNet's value ----------------------------
    train_text_encoder: bool = False  #: also train a LoRA on the CLIP text encoder(s); no text caching
    text_encoder_lr: float | None = None
    text_encoder_rank: int | None = None
    text_encoder_alpha: float | None = None
    # -- prior preservation (class_images.py, prior.py; DreamBooth): on with a class_data_dir ----
    class_data_dir: str | None = None  #: images + .txt captions of the class ("a photo of a bottle")
    class_prompt: str | None = None  #: caption of generated class images
    num_class_images: int = 0  #: generate class images until the folder holds this many
    prior_loss_weight: float = 1.0

    # -- validation -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ``TrainConfigError`` naming every invalid field; return None when usable."""
        problems: dict[str, str] = {}
        for name, check in _FIELD_CHECKS.items():
            message = check(getattr(self, name))
            if message:
                problems[name] = message
        if "data_dir" not in problems:
            message = _check_data_dir_contents(Path(self.data_dir))
            if message:
                problems["data_dir"] = message
        from training.class_images import class_image_problems  # light; imported here to avoid a cycle

        for name, message in class_image_problems(self, problems).items():
            problems.setdefault(name, message)
        for name, message in _cross_field_problems(self).items():
            problems.setdefault(name, message)
        if problems:
            raise TrainConfigError(problems)

    # -- (de)serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def text_encoder_settings(self) -> tuple[float, int, float]:
        """``(learning rate, rank, alpha)`` of the text-encoder LoRA (each None falls back to the UNet's)."""
        lr = self.learning_rate if self.text_encoder_lr is None else self.text_encoder_lr
        rank = self.rank if self.text_encoder_rank is None else self.text_encoder_rank
        alpha = self.alpha if self.text_encoder_alpha is None else self.text_encoder_alpha
        return lr, rank, alpha

    def bucket_range(self) -> tuple[int, int]:
        """``(min_bucket_reso, max_bucket_reso)`` with the defaults filled in.

        Defaults: half the resolution (rounded down to ``bucket_reso_steps``, at least one step)
        and twice the resolution -- kohya's 256..1024 for 512.
        """
        steps = self.bucket_reso_steps
        low = self.min_bucket_reso
        if low is None:
            low = max(steps, self.resolution // 2 // steps * steps)
        high = self.max_bucket_reso if self.max_bucket_reso is not None else self.resolution * 2
        return low, high

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from plain values; unknown or missing keys are errors (values unchecked)."""
        if not isinstance(data, dict):
            raise TrainConfigError({"config": f"expected a JSON object, got {type(data).__name__}"})
        known = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if _is_required(f)}
        problems = {
            key: f"unknown setting (valid settings: {', '.join(sorted(known))})"
            for key in data
            if key not in known
        }
        problems.update({key: "is required" for key in sorted(required - data.keys())})
        if problems:
            raise TrainConfigError(problems)
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """Read a JSON object of settings (relative paths in it are taken from the working directory)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TrainConfigError({"config": f"cannot read {path}: {exc.strerror or exc}"}) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrainConfigError({"config": f"{path} is not valid JSON: {exc}"}) from exc
        return cls.from_dict(data)


def _is_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


# -- per-field checks: each returns an error message or "" ------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float)) and not isinstance(value, bool)


def _int_at_least(minimum: int) -> Any:
    def check(value: object) -> str:
        if not _is_int(value):
            return f"must be a whole number, got {value!r}"
        if value < minimum:  # type: ignore[operator]
            return f"must be >= {minimum}, got {value}"
        return ""

    return check


def _positive_finite(value: object) -> str:
    if not _is_number(value):
        return f"must be a number, got {value!r}"
    if not math.isfinite(value) or value <= 0:  # type: ignore[arg-type,operator]
        return f"must be a finite number > 0, got {value}"
    return ""


def _check_bool(value: object) -> str:
    return "" if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _choice(options: tuple[str, ...]) -> Any:
    def check(value: object) -> str:
        return "" if value in options else f"must be one of {', '.join(options)}; got {value!r}"

    return check


def _check_model_dir(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "must be the path of a local diffusers model folder"
    folder = Path(value)
    if not folder.is_dir():
        return f"folder {folder} does not exist; give a local diffusers folder (hub ids are resolved by the caller)"
    if model_family(folder) == "sdxl":
        missing = [name for name in SDXL_SUBFOLDERS if not (folder / name).is_dir()]
        if missing:
            return (
                f"{folder} is an SDXL model (StableDiffusionXLPipeline) but lacks sub-folder(s) "
                f"{', '.join(missing)}; an SDXL folder needs {', '.join(SDXL_SUBFOLDERS)}"
            )
        return ""
    missing = [name for name in MODEL_SUBFOLDERS if not (folder / name).is_dir()]
    if missing:
        return f"{folder} is not a diffusers SD folder: missing sub-folder(s) {', '.join(missing)}"
    return ""


def _check_data_dir(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "must be the path of a folder of images with .txt captions"
    if not Path(value).is_dir():
        return f"folder {value} does not exist"
    return ""


def _check_data_dir_contents(folder: Path) -> str:
    from training.dataset import DatasetError, find_examples

    try:
        find_examples(folder)
    except DatasetError as exc:
        return exc.message
    return ""


def _check_output_dir(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "must be the path of a folder to write the LoRA into"
    if Path(value).exists() and not Path(value).is_dir():
        return f"{value} exists and is not a folder"
    return ""


def _check_output_name(value: object) -> str:
    if not isinstance(value, str) or not _OUTPUT_NAME_RE.match(value):
        return (
            f"must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or "
            f"digit (it becomes <output_name>.safetensors); got {value!r}"
        )
    return ""


def _check_resolution(value: object) -> str:
    if not _is_int(value):
        return f"must be a whole number of pixels, got {value!r}"
    if not 64 <= value <= 2048 or value % 8:  # type: ignore[operator]
        return f"must be a multiple of 8 between 64 and 2048, got {value}"
    return ""


def _check_seed(value: object) -> str:
    if not _is_int(value) or not 0 <= value < 2**32:  # type: ignore[operator]
        return f"must be a whole number in 0..4294967295, got {value!r}"
    return ""


def _check_target_modules(value: object) -> str:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of module names such as 'to_q' or 'ff.net.2'"
    bad = [item for item in value if not isinstance(item, str) or not item.strip()]
    return f"entries must be non-empty strings, got {bad!r}" if bad else ""


def _check_metadata(value: object) -> str:
    if not isinstance(value, dict):
        return f"must be a mapping of string keys to string values, got {type(value).__name__}"
    bad = [k for k, v in value.items() if not isinstance(k, str) or not k or not isinstance(v, str)]
    if bad:
        return f"keys and values must be strings (header metadata is text); bad entries: {bad!r}"
    reserved = sorted(RESERVED_METADATA_KEYS & value.keys())
    if reserved:
        return f"{', '.join(reserved)} are written by the trainer itself; remove them"
    return ""


def _optional(check: Any) -> Any:
    return lambda value: "" if value is None else check(value)


def _check_bucket_reso(value: object) -> str:
    if not _is_int(value) or not 8 <= value <= 4096 or value % 8:  # type: ignore[operator]
        return f"must be a multiple of 8 between 8 and 4096 (or null for the default), got {value!r}"
    return ""


def _check_bucket_steps(value: object) -> str:
    if not _is_int(value) or not 8 <= value <= 256 or value % 8:  # type: ignore[operator]
        return f"must be a multiple of 8 between 8 and 256 (64 suits SD 1.x), got {value!r}"
    return ""


def _non_negative_finite(value: object) -> str:
    if not _is_number(value) or not math.isfinite(value) or value < 0:  # type: ignore[arg-type,operator]
        return f"must be a finite number >= 0, got {value!r}"
    return ""


def _check_resume_from(value: object) -> str:
    if value is None or (isinstance(value, str) and value.strip()):
        return ""
    return f"must be 'latest', the path of a checkpoint folder, or null; got {value!r}"


def _cross_field_problems(config: TrainConfig) -> dict[str, str]:
    """Checks that involve two fields (run after each field passed its own check)."""
    problems: dict[str, str] = {}
    fields_ok = all(
        not _FIELD_CHECKS[name](getattr(config, name))
        for name in ("resolution", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "enable_bucket")
    )
    if fields_ok and config.enable_bucket:
        low, high = config.bucket_range()
        if low > config.resolution:
            problems["min_bucket_reso"] = f"must be <= resolution ({config.resolution}), got {low}"
        if high < config.resolution:
            problems["max_bucket_reso"] = f"must be >= resolution ({config.resolution}), got {high}"
    if config.train_text_encoder is not True:
        for name in ("text_encoder_lr", "text_encoder_rank", "text_encoder_alpha"):
            if getattr(config, name) is not None:
                problems[name] = (
                    "is only used with train_text_encoder true; set train_text_encoder or remove it"
                )
    return problems


_FIELD_CHECKS: dict[str, Any] = {
    "pretrained_model": _check_model_dir,
    "data_dir": _check_data_dir,
    "output_dir": _check_output_dir,
    "output_name": _check_output_name,
    "resolution": _check_resolution,
    "train_batch_size": _int_at_least(1),
    "max_train_steps": _int_at_least(1),
    "learning_rate": _positive_finite,
    "rank": _int_at_least(1),
    "alpha": _positive_finite,
    "target_modules": _check_target_modules,
    "optimizer": _choice(get_args(OptimizerName)),
    "seed": _check_seed,
    "mixed_precision": _choice(get_args(MixedPrecision)),
    "gradient_accumulation_steps": _int_at_least(1),
    "lr_warmup_steps": _int_at_least(0),
    "max_grad_norm": _positive_finite,
    "center_crop": _check_bool,
    "random_flip": _check_bool,
    "metadata": _check_metadata,
    "cache_latents": _check_bool,
    "cache_text_embeddings": _check_bool,
    "gradient_checkpointing": _check_bool,
    "enable_bucket": _check_bool,
    "min_bucket_reso": _optional(_check_bucket_reso),
    "max_bucket_reso": _optional(_check_bucket_reso),
    "bucket_reso_steps": _check_bucket_steps,
    "min_snr_gamma": _optional(_positive_finite),
    "noise_offset": _non_negative_finite,
    "masked_loss": _check_bool,
    "checkpointing_steps": _int_at_least(0),
    "checkpoints_total_limit": _int_at_least(1),
    "resume_from": _check_resume_from,
    "export_kohya": _check_bool,
    "train_text_encoder": _check_bool,
    "text_encoder_lr": _optional(_positive_finite),
    "text_encoder_rank": _optional(_int_at_least(1)),
    "text_encoder_alpha": _optional(_positive_finite),
    "num_class_images": _int_at_least(0),  # class_data_dir, class_prompt: class_images.py
    "prior_loss_weight": _non_negative_finite,
}
