"""Resolve a ControlNet reference to a local folder or file, safetensors only (like :mod:`studio.models`).

References, tried in this order:

1. a local path, or a name found in a models folder (``<dir>/ControlNet/<name>[.safetensors]``, the
   AUTOMATIC1111 layout, or ``<dir>/<name>``): a diffusers folder (``config.json`` of a
   ``ControlNetModel`` + ``*.safetensors``) or a single ``.safetensors`` file;
2. a hub id ``org/name``: downloaded (safetensors and configs only) when online; offline it must be in
   the local hub cache, otherwise a clear error says how to fix it.

Pickle files (``.pth``, ``.ckpt``, ``.bin``...) are refused without being opened, and a ``.safetensors``
file is checked by its content (a renamed pickle is refused too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from studio.errors import ModelError
from studio.models import HUB_ID, PICKLE_REFUSAL, PICKLE_SUFFIXES, file_sha256, read_safetensors_header

ControlNetKind = Literal["diffusers_folder", "single_file", "hub"]
#: Sub-folders of a models folder searched for a bare name (AUTOMATIC1111 keeps them in ControlNet/).
CONTROLNET_DIRS = ("ControlNet", "controlnet", "")
#: Keys that only ControlNet weights have (diffusers names, original names with and without prefix).
CONTROLNET_KEY_MARKERS = ("controlnet_cond_embedding.", "control_model.", "input_hint_block.")
HUB_ALLOW = ["*.json", "*.safetensors"]
A1111_HASH_OFFSET = 0x100000
A1111_HASH_LENGTH = 0x10000


@dataclass(frozen=True)
class ResolvedControlNet:
    ref: str
    kind: ControlNetKind
    path: Path  #: the diffusers folder or the single .safetensors file to load
    name: str
    sha256: str  #: SHA-256 of the weights file
    short_hash: str  #: AUTOMATIC1111's ControlNet hash (8 hex), as in "Model: name [hash]"


def resolve_controlnet(ref: str, *, search_dirs: list[Path], models_dir: Path, offline: bool) -> ResolvedControlNet:
    """Turn what the user typed into a :class:`ResolvedControlNet`, or raise :class:`ModelError`."""
    ref = ref.strip()
    if not ref:
        raise ModelError("no ControlNet given: use a diffusers folder, a .safetensors file or a hub id")
    local = _find_local(ref, search_dirs)
    if local is not None:
        if local.is_dir():
            return _describe(ref, "diffusers_folder", local, _folder_weights(local), models_dir)
        _check_single_file(local)
        return _describe(ref, "single_file", local, local, models_dir)
    suffix = Path(ref).suffix.lower()
    if suffix in PICKLE_SUFFIXES or suffix == ".safetensors" or "\\" in ref or ref.startswith((".", "/", "~")):
        raise ModelError(f"ControlNet file or folder not found: {ref}. Check the path, or put it in a models folder.")
    if HUB_ID.match(ref):
        folder = _fetch_hub(ref, offline)
        return _describe(ref, "hub", folder, _folder_weights(folder), models_dir)
    raise ModelError(
        f"cannot understand ControlNet reference {ref!r}: use a local diffusers folder, a .safetensors file, "
        "or a hub id like lllyasviel/sd-controlnet-canny"
    )


def a1111_model_hash(path: Path) -> str:
    """AUTOMATIC1111's ``sd_models.model_hash`` (what sd-webui-controlnet shows in brackets): the first
    8 hex of the SHA-256 of 64 KiB read at offset 1 MiB."""
    import hashlib

    with path.open("rb") as fh:
        fh.seek(A1111_HASH_OFFSET)
        return hashlib.sha256(fh.read(A1111_HASH_LENGTH)).hexdigest()[:8]


def _find_local(ref: str, search_dirs: list[Path]) -> Path | None:
    candidates = [Path(ref).expanduser()]
    if not Path(ref).is_absolute():
        for base in search_dirs:
            for sub in CONTROLNET_DIRS:
                candidates += [base / sub / ref, base / sub / f"{ref}.safetensors"]
    for cand in candidates:
        if cand.exists():
            if cand.is_file() and cand.suffix.lower() in PICKLE_SUFFIXES:
                raise ModelError(PICKLE_REFUSAL.format(name=cand.name, suffix=cand.suffix))
            return cand.resolve()
    return None


def _check_single_file(path: Path) -> None:
    if path.suffix.lower() != ".safetensors":
        raise ModelError(f"{path.name} is not a .safetensors file; only safetensors ControlNets are loaded")
    header = read_safetensors_header(path)  # refuses renamed pickles and truncated files by content
    if not any(key.startswith(CONTROLNET_KEY_MARKERS) for key in header):
        raise ModelError(
            f"{path.name} is not a ControlNet (none of its tensors belong to one); is it a LoRA or a "
            "checkpoint? Pick a ControlNet model, e.g. control_v11p_sd15_canny."
        )


def _folder_weights(folder: Path) -> Path:
    """The folder's weights file, after checking it is a diffusers ControlNet with safetensors."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(f"{folder.name} is not a diffusers ControlNet folder (no config.json)")
    try:
        class_name = json.loads(config_file.read_text()).get("_class_name", "")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise ModelError(f"{folder.name}/config.json is unreadable: {exc}") from exc
    if class_name != "ControlNetModel":
        raise ModelError(f"{folder.name} holds a {class_name or 'non-diffusers'} model, not a ControlNetModel")
    safes = sorted(p for p in folder.glob("*.safetensors") if "fp16" not in p.name) or sorted(folder.glob("*.safetensors"))
    if not safes:
        pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        hint = f" (found only pickle files: {', '.join(pickles)})" if pickles else ""
        raise ModelError(
            f"{folder.name} has no .safetensors weights{hint}; Brand Studio loads only safetensors. "
            "Download the safetensors variant of this ControlNet."
        )
    for weights in safes:
        read_safetensors_header(weights)
    return safes[0]


def _describe(ref: str, kind: ControlNetKind, path: Path, weights: Path, models_dir: Path) -> ResolvedControlNet:
    name = path.stem if kind == "single_file" else (ref.rsplit("/", 1)[-1] if kind == "hub" else path.name)
    return ResolvedControlNet(
        ref=ref, kind=kind, path=path, name=name, sha256=file_sha256(weights, models_dir),
        short_hash=a1111_model_hash(weights),
    )  # fmt: skip


def _fetch_hub(repo_id: str, offline: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id, allow_patterns=HUB_ALLOW, local_files_only=offline)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        if offline:
            raise ModelError(
                f"ControlNet {repo_id} is not downloaded and hub downloads are off (offline). On a connected "
                f"machine run `hf download {repo_id} --include '*.safetensors' '*.json'` and give the downloaded "
                "folder instead, or unset HF_HUB_OFFLINE."
            ) from exc
        raise ModelError(f"could not download ControlNet {repo_id} from the hub: {exc}") from exc
    return Path(folder)
