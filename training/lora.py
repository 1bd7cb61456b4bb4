"""Attach a peft LoRA to a diffusers UNet and save it as a diffusers/PEFT-format ``.safetensors``.

File layout (what ``StableDiffusionPipeline.load_lora_weights`` reads in diffusers 0.42):

- tensors ``unet.<module path>.lora_A.weight`` / ``unet.<module path>.lora_B.weight``;
- header ``format = "pt"`` and ``lora_adapter_metadata`` = the adapter's ``LoraConfig.to_dict()``
  with every key prefixed ``unet.``, sets as lists, ``json.dumps(indent=2, sort_keys=True)`` --
  exactly what ``LoraBaseMixin.write_lora_layers`` writes, so the loader rebuilds the LoraConfig
  (``lora_alpha`` included) instead of guessing ``alpha = rank``;
- the caller's metadata (``ss_*``, ``modelspec.*``) plus two hashes of the tensor payload.

With a text-encoder LoRA (``train_text_encoder``) the file also holds
``text_encoder.text_model.<module path>.lora_A/B.weight`` (and ``text_encoder_2.`` for SDXL's second
encoder) and ``lora_adapter_metadata`` their LoraConfigs under ``text_encoder.`` / ``text_encoder_2.``,
as diffusers' ``save_lora_weights`` writes them. Paths always start with ``text_model.`` (the layout
of older transformers' ``CLIPTextModel`` and of ``CLIPTextModelWithProjection``, which kohya,
ComfyUI and A1111 expect); diffusers drops it for an encoder without that level.

Hashes. The *tensor payload* is the file minus its 8-byte length prefix and JSON header: the bytes
kohya's ``addnet_hash_safetensors`` (sd-scripts ``library/train_util.py``) hashes, which A1111
reads back from ``sshs_model_hash`` for "Lora hashes". safetensors lays tensors out in an order
fixed by dtype and name and stores offsets relative to the payload, so the payload does not depend
on the header: same weights -> same ``sshs_model_hash`` whatever the metadata. ``modelspec.hash_sha256``
is the same digest as ``0x<hex>`` (ModelSpec: "hash of tensor content, header excluded"). kohya's
``sshs_legacy_hash`` (bytes 1 MiB..1 MiB+64 KiB of a file written with ss_* keys only) is not written:
it is empty for small LoRAs and depends on the header. ``save_lora`` returns the SHA-256 of the
whole file, which does change with metadata (timestamps).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import RESERVED_METADATA_KEYS, TrainConfigError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ADAPTER_NAME = "default"
#: Key prefix of the UNet's tensors (diffusers' ``StableDiffusionLoraLoaderMixin.unet_name``).
UNET_PREFIX = "unet"
#: Key prefixes of the text encoders' tensors (diffusers' ``text_encoder_name``, SDXL's second).
TEXT_ENCODER_PREFIXES = ("text_encoder", "text_encoder_2")
#: The path level CLIP text models had (and ``CLIPTextModelWithProjection`` still has) above ``encoder``.
TEXT_MODEL = "text_model."
_HASH_BLOCK = 1024 * 1024
#: Mode of written files: what ``open()`` gives under the usual umask 022.
FILE_MODE = 0o644


def matched_modules(model: torch.nn.Module, target_modules: Iterable[str]) -> dict[str, list[str]]:
    """Module paths each target name matches, by peft's rule for a list of names.

    (``check_target_module_exists``: the path equals the name or ends with ``.<name>``.)
    """
    names = [name for name, _ in model.named_modules()]
    return {
        target: [n for n in names if n == target or n.endswith(f".{target}")] for target in target_modules
    }


def attach_lora(unet: Any, *, rank: int, alpha: float, target_modules: list[str]) -> list[str]:
    """Add a trainable LoRA adapter to ``unet`` (diffusers ``add_adapter``); return the wrapped paths.

    Raises ``TrainConfigError`` (field ``target_modules``) when no module matches. Target names
    that match nothing while others do are logged as a warning (likely a typo).
    """
    from peft import LoraConfig

    matches = matched_modules(unet, target_modules)
    wrapped = sorted({path for paths in matches.values() for path in paths})
    if not wrapped:
        examples = ", ".join(sorted({n.rsplit(".", 1)[-1] for n, _ in unet.named_modules() if n})[:20])
        raise TrainConfigError(
            {
                "target_modules": f"none of {list(target_modules)} names a module of this UNet; "
                f"use module names such as: {examples}"
            }
        )
    unmatched = [t for t, paths in matches.items() if not paths]
    if unmatched:
        logger.warning("target_modules %s match no module of this UNet and are ignored", unmatched)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int; a float alpha works and is kept
        init_lora_weights="gaussian",
        target_modules=list(target_modules),
    )
    unet.add_adapter(config, adapter_name=ADAPTER_NAME)  # diffusers PeftAdapterMixin
    logger.info("LoRA rank %d alpha %g on %d modules", rank, alpha, len(wrapped))
    return wrapped


def lora_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors under diffusers/PEFT names (``unet.<path>.lora_A.weight`` ...), on CPU."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(unet, adapter_name=ADAPTER_NAME)
    if not state:
        raise ValueError("the UNet has no LoRA adapter to save; call attach_lora first")
    return {f"{UNET_PREFIX}.{key}": t.detach().to("cpu").contiguous() for key, t in state.items()}


def text_encoder_state_dict(text_encoder: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A text encoder's adapter tensors as ``<prefix>.text_model.<path>.lora_A.weight`` ..., on CPU."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(text_encoder, adapter_name=ADAPTER_NAME)
    if not state:
        raise ValueError(f"{prefix} has no LoRA adapter to save; attach one first")
    return {f"{prefix}.{text_model_path(key)}": t.detach().to("cpu").contiguous() for key, t in state.items()}


def text_model_path(path: str) -> str:
    """``path`` of a text encoder's module or tensor with the ``text_model.`` level (added if missing)."""
    return path if path.startswith(TEXT_MODEL) else TEXT_MODEL + path


def lora_adapter_metadata(unet: Any, text_encoders: Mapping[str, Any] | None = None) -> str:
    """The ``lora_adapter_metadata`` header value, as diffusers' ``write_lora_layers`` builds it.

    Sets become *sorted* lists (diffusers uses ``list(set)``, whose order changes between runs) so
    the same adapter always yields the same header text. ``text_encoders`` maps a key prefix
    (``TEXT_ENCODER_PREFIXES``) to a text encoder carrying an adapter.
    """
    plain: dict[str, Any] = {}
    for prefix, model in {UNET_PREFIX: unet, **(text_encoders or {})}.items():
        config = model.peft_config[ADAPTER_NAME].to_dict()
        plain.update(
            {
                f"{prefix}.{key}": sorted(value) if isinstance(value, set) else value
                for key, value in config.items()
            }
        )
    return json.dumps(plain, indent=2, sort_keys=True)


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a whole file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def payload_sha256(data: bytes) -> str:
    """SHA-256 (hex) of the tensor payload of serialised safetensors ``data`` (kohya's way)."""
    header_len = int.from_bytes(data[:8], "little")
    return hashlib.sha256(memoryview(data)[8 + header_len :]).hexdigest()


def file_tensor_sha256(path: Path) -> str:
    """SHA-256 (hex) of the tensor payload of the safetensors file at ``path``."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        header_len = int.from_bytes(stream.read(8), "little")
        stream.seek(8 + header_len)
        for block in iter(lambda: stream.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def save_lora(
    unet: torch.nn.Module,
    path: Path,
    metadata: Mapping[str, str],
    text_encoders: Mapping[str, torch.nn.Module] | None = None,
) -> str:
    """Write the UNet's LoRA to ``path`` atomically; return the SHA-256 (hex) of the whole file.

    ``metadata`` (all strings) is merged into the header next to ``format``,
    ``lora_adapter_metadata``, ``sshs_model_hash`` and ``modelspec.hash_sha256``, which this
    function writes and which ``metadata`` may therefore not contain. ``text_encoders`` (key prefix
    -> text encoder with an adapter) adds their LoRAs to the file.
    """
    import safetensors.torch

    path = Path(path)
    _check_metadata(metadata)
    tensors = lora_state_dict(unet)
    for prefix, text_encoder in (text_encoders or {}).items():
        tensors.update(text_encoder_state_dict(text_encoder, prefix))
    tensor_hash = payload_sha256(safetensors.torch.save(tensors))
    header = {
        **metadata,
        "format": "pt",
        "lora_adapter_metadata": lora_adapter_metadata(unet, text_encoders),
        "sshs_model_hash": tensor_hash,
        "modelspec.hash_sha256": f"0x{tensor_hash}",
    }
    data = safetensors.torch.save(tensors, metadata=header)
    if payload_sha256(data) != tensor_hash:  # the layout promise the hashes rely on
        raise RuntimeError("safetensors payload changed with the header; tensor hash would be wrong")
    write_atomic(path, data)
    logger.info("saved LoRA %s (%d tensors, %d bytes)", path, len(tensors), len(data))
    return hashlib.sha256(data).hexdigest()


def _check_metadata(metadata: Mapping[str, str]) -> None:
    reserved = sorted(RESERVED_METADATA_KEYS & metadata.keys())
    if reserved:
        raise ValueError(f"metadata keys {reserved} are written by save_lora itself; remove them")
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise TypeError(f"safetensors header metadata must be str -> str; bad keys: {bad}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then ``os.replace`` it into place.

    A crash leaves either the old file or the new one under ``path``, never a partial file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a LoRA is read by other processes/users
            os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); Windows cannot open folders, where this is skipped."""
    if os.name != "posix":
        return
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
