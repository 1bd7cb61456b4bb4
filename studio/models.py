"""Resolve a model reference to a loadable local diffusers folder. Only safetensors are ever loaded.

References, tried in this order:

1. ``builtin:demo``: the committed demo model that draws simple coloured objects, and
   ``builtin:tiny``: the placeholder model built from config (see :mod:`studio.builtin_model`).
2. A local path (or a name found in a models folder, including an AUTOMATIC1111 ``models/``
   layout): a diffusers folder (``model_index.json``) or a single-file ``.safetensors`` checkpoint,
   which is converted once into a diffusers folder under the data dir.
3. A hub id ``org/name``: downloaded (safetensors and configs only) when online; offline it must be
   in the local hub cache, otherwise a clear error says how to fix it.

Pickle-based files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) are refused without being opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from studio.builtin_model import BUILTIN_DEMO, BUILTIN_TINY, DEMO_FOLDER, materialize_builtin
from studio.errors import ModelError
from studio.fileio import atomic_write_bytes

logger = logging.getLogger(__name__)

ModelKind = Literal["builtin", "diffusers_folder", "single_file", "hub"]
Family = Literal["sd1", "sd2", "sdxl"]

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
#: Where AUTOMATIC1111 keeps checkpoints inside its ``models/`` folder.
A1111_CHECKPOINT_DIRS = ("", "Stable-diffusion", "checkpoints", "diffusers")
MAX_HEADER_BYTES = 100 * 1024 * 1024
HUB_ALLOW = ["*.json", "*.txt", "*.safetensors", "*.model"]
HUB_IGNORE = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.msgpack", "*.h5", "*.onnx", "*.onnx_data", "*non_ema*"]
PICKLE_REFUSAL = (
    "{name} is a pickle-based file ({suffix}); Brand Studio only loads .safetensors because loading a "
    "pickle can run arbitrary code. Convert it on a trusted, isolated machine (for example with "
    "diffusers' scripts/convert_original_stable_diffusion_to_diffusers.py --to_safetensors, or "
    "safetensors.torch.save_file on its state dict) and use the .safetensors file."
)


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: ``path`` is always a local diffusers folder of safetensors."""

    ref: str
    kind: ModelKind
    path: Path
    family: Family
    name: str
    sha256: str
    is_placeholder: bool
    default_size: int
    is_demo: bool = False  #: the committed demo model (``builtin:demo``): small, 64 px, simple objects
    #: The guidance a form starts at: 7 (A1111's default) unless the folder's ``brand_studio_model.json``
    #: names another (the demo model's is 2, where its quality is measured).
    default_guidance: float = 7.0

    @property
    def short_hash(self) -> str:
        """AUTOMATIC1111's "Model hash": the first 10 hex digits of the file's SHA-256."""
        return self.sha256[:10]


def resolve_model(
    ref: str,
    *,
    models_dir: Path,
    search_dirs: list[Path] | None = None,
    single_file_config: Path | None = None,
    offline: bool = True,
) -> ResolvedModel:
    """Turn what the user typed into a :class:`ResolvedModel`, or raise :class:`ModelError`."""
    ref = ref.strip()
    if not ref:
        raise ModelError("no model given: use builtin:demo, builtin:tiny, a folder, a .safetensors file or a hub id")
    if ref == BUILTIN_TINY:
        folder = materialize_builtin(models_dir)
        return _describe_folder(ref, "builtin", folder, models_dir, placeholder=True)
    if ref == BUILTIN_DEMO:
        if not (DEMO_FOLDER / "model_index.json").is_file():
            raise ModelError(
                f"the demo model is missing from {DEMO_FOLDER}; rebuild it with `make demo-model` "
                f"(about 25 minutes on a 2-core CPU) or use {BUILTIN_TINY}"
            )
        return _describe_folder(ref, "builtin", DEMO_FOLDER, models_dir)
    if ref.startswith("builtin:"):
        raise ModelError(f"unknown built-in model {ref!r}; the built-in models are {BUILTIN_DEMO!r} and {BUILTIN_TINY!r}")
    local = _find_local(ref, search_dirs or [])
    if local is not None:
        if local.is_dir():
            return _describe_folder(ref, "diffusers_folder", local, models_dir)
        folder = _convert_single_file(local, models_dir, single_file_config, offline)
        return _describe_folder(ref, "single_file", folder, models_dir, source_file=local)
    suffix = Path(ref).suffix.lower()
    if suffix in PICKLE_SUFFIXES or suffix == ".safetensors" or "\\" in ref or ref.startswith((".", "/", "~")):
        raise ModelError(f"model file or folder not found: {ref}. Check the path, or put it in a models folder.")
    if HUB_ID.match(ref):
        folder = _fetch_hub(ref, offline)
        return _describe_folder(ref, "hub", folder, models_dir)
    raise ModelError(
        f"cannot understand model reference {ref!r}: use builtin:demo, builtin:tiny, a local diffusers folder, "
        "a single-file .safetensors checkpoint, or a hub id like org/name"
    )


def _find_local(ref: str, search_dirs: list[Path]) -> Path | None:
    candidates = [Path(ref).expanduser()]
    if not Path(ref).is_absolute():
        for base in search_dirs:
            for sub in A1111_CHECKPOINT_DIRS:
                candidates += [base / sub / ref, base / sub / f"{ref}.safetensors"]
    for cand in candidates:
        if cand.exists():
            _refuse_pickle(cand)
            return cand.resolve()
    return None


def _refuse_pickle(path: Path) -> None:
    if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelError(PICKLE_REFUSAL.format(name=path.name, suffix=path.suffix))
    if path.is_file() and path.suffix.lower() != ".safetensors":
        raise ModelError(f"{path.name} is not a .safetensors file; only safetensors models are loaded")


def read_safetensors_header(path: Path) -> dict[str, object]:
    """Check a file is a complete safetensors file by its content (never by its name) and return its header.

    Raises ModelError for pickles renamed ``.safetensors``, unreadable headers and truncated files.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelError(f"{path.name} is not a safetensors file (too short); refusing to load it")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > MAX_HEADER_BYTES or n > size - 8:
            raise ModelError(
                f"{path.name} is not a safetensors file (its header is unreadable; is it a renamed "
                "pickle checkpoint?); refusing to load it"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path.name} is not a safetensors file (bad header JSON); refusing to load it") from exc
    if not isinstance(header, dict):
        raise ModelError(f"{path.name} is not a safetensors file (header is not a table)")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise ModelError(f"{path.name} has a malformed tensor entry {key!r}; re-download it")
        end = max(end, int(offsets[1]))
    if 8 + n + end > size:
        raise ModelError(f"{path.name} is incomplete (cut off mid-tensor); re-download it")
    return header


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """SHA-256 of a file, cached by (path, size, mtime) so multi-GB checkpoints hash once."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir / "hashes.json" if cache_dir else None
    cache: dict[str, str] = {}
    if cache_file and cache_file.is_file():
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, json.JSONDecodeError):
            cache = {}
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    if cache_file:
        cache[key] = value
        atomic_write_bytes(cache_file, json.dumps(cache, indent=0).encode())
    return value


def _describe_folder(
    ref: str,
    kind: ModelKind,
    folder: Path,
    models_dir: Path,
    *,
    placeholder: bool = False,
    source_file: Path | None = None,
) -> ResolvedModel:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelError(f"{folder} is not a diffusers model folder (no model_index.json)")
    index = json.loads(index_file.read_text())
    unet_weights = _check_component_weights(folder, index)
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    family = _family(index, unet_config)
    vae_factor = 8
    vae_config_file = folder / "vae" / "config.json"
    if vae_config_file.is_file():
        vae_factor = 2 ** (len(json.loads(vae_config_file.read_text()).get("block_out_channels", [0] * 4)) - 1)
    default_size = int(unet_config.get("sample_size", 64)) * vae_factor
    hashed = source_file if source_file is not None else unet_weights
    name = source_file.stem if source_file is not None else folder.name
    if kind == "builtin":
        name = "builtin-tiny" if placeholder else "builtin-demo"
    return ResolvedModel(
        ref=ref,
        kind=kind,
        path=folder,
        family=family,
        name=name,
        sha256=file_sha256(hashed, models_dir),
        is_placeholder=placeholder,
        default_size=default_size,
        is_demo=kind == "builtin" and not placeholder,
        default_guidance=_default_guidance(folder),
    )


def _default_guidance(folder: Path) -> float:
    """``default_guidance`` from the folder's ``brand_studio_model.json`` (ours), if it is a sane number."""
    try:
        value = json.loads((folder / "brand_studio_model.json").read_text()).get("default_guidance", 7.0)
    except (OSError, ValueError, AttributeError):
        return 7.0
    return float(value) if isinstance(value, int | float) and 0 <= value <= 30 else 7.0


def _check_component_weights(folder: Path, index: dict[str, object]) -> Path:
    """Every weighted component must have safetensors; a pickle-only component is refused."""
    unet_file: Path | None = None
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if component not in index or index[component] in (None, [None, None]):
            continue
        sub = folder / component
        safes = sorted(sub.glob("*.safetensors"))
        if not safes:
            pickles = [p.name for p in sub.glob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
            hint = f" (found only pickle files: {', '.join(pickles)})" if pickles else ""
            raise ModelError(
                f"{folder.name}/{component} has no .safetensors weights{hint}; Brand Studio loads only "
                "safetensors. Download the safetensors variant of this model."
            )
        if component == "unet":
            unet_file = next((p for p in safes if "fp16" not in p.name), safes[0])
    if unet_file is None:
        raise ModelError(f"{folder} has no unet component; it is not a Stable Diffusion model")
    return unet_file


def _family(index: dict[str, object], unet_config: dict[str, object]) -> Family:
    cls = str(index.get("_class_name", ""))
    if "XL" in cls or unet_config.get("addition_embed_type") == "text_time":
        return "sdxl"
    if unet_config.get("cross_attention_dim") == 1024:
        return "sd2"
    return "sd1"


def _single_file_family(header: dict[str, object]) -> Family:
    keys = header.keys()
    if any(k.startswith("conditioner.embedders.1") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "sd1"
    raise ModelError(
        "this .safetensors file is not a Stable Diffusion checkpoint (no model.diffusion_model.* keys); "
        "is it a LoRA? Add LoRAs on the LoRA page instead."
    )


def _convert_single_file(path: Path, models_dir: Path, config: Path | None, offline: bool) -> Path:
    """Convert a single-file checkpoint into a cached diffusers folder (once per file content)."""
    header = read_safetensors_header(path)
    family = _single_file_family(header)
    digest = file_sha256(path, models_dir)
    target = models_dir / "converted" / f"{path.stem[:60]}-{digest[:12]}"
    if (target / "model_index.json").is_file():
        return target
    if offline and config is None:
        raise ModelError(
            f"{path.name} is a single-file checkpoint; converting it needs its architecture's configs. "
            "Offline, set BRAND_STUDIO_SINGLE_FILE_CONFIG to a local diffusers folder of the same "
            f"architecture ({family}), e.g. a downloaded stable-diffusion-v1-5 folder, or go online once."
        )
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    pipeline_cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        kwargs: dict[str, object] = {"local_files_only": offline}
        if config is not None:
            kwargs["config"] = str(config)
        if family != "sdxl":
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        try:
            pipe = pipeline_cls.from_single_file(str(path), **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError, SingleFileComponentError) as exc:
            raise ModelError(f"could not convert {path.name}: {exc}") from exc
        pipe.save_pretrained(staging, safe_serialization=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fetch_hub(repo_id: str, offline: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id, allow_patterns=HUB_ALLOW, ignore_patterns=HUB_IGNORE, local_files_only=offline
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        if offline:
            raise ModelError(
                f"hub model {repo_id} is not downloaded and hub downloads are off (offline). On a connected "
                f"machine run `hf download {repo_id} --include '*.safetensors' '*.json' '*.txt'` and set "
                "BRAND_STUDIO_BASE_MODEL to the downloaded folder, or unset HF_HUB_OFFLINE."
            ) from exc
        raise ModelError(f"could not download {repo_id} from the hub: {exc}") from exc
    return Path(folder)
