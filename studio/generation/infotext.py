"""AUTOMATIC1111 ``parameters`` text: write it exactly as A1111 does, and read it back.

Format (A1111 ``modules/processing.py`` create_infotext and ``modules/infotext_utils.py``)::

    <prompt, may span lines>
    Negative prompt: <negative>          (omitted when empty)
    Steps: 20, Sampler: Euler, ...       (one line; None values skipped)

A value is JSON-quoted only when it contains ``,``, ``:`` or a newline; a key whose value equals the
key is written bare. Keys come in A1111's order, then extra keys in insertion order, then Version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

#: A1111's fixed key order; keys not listed here follow in insertion order, before Version and User.
KEY_ORDER = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Image CFG scale", "Seed", "Face restoration",
    "Size", "Model hash", "Model", "FP8 weight", "Cache FP16 weight for LoRA", "VAE hash", "VAE",
    "Variation seed", "Variation seed strength", "Seed resize from", "Denoising strength",
    "Conditional mask weight", "Clip skip", "ENSD", "Token merging ratio", "Token merging ratio hr",
    "Init image hash", "RNG", "Tiling",
)  # fmt: skip
TRAILING_KEYS = ("Version", "User")
PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
SIZE_RE = re.compile(r"^(\d+)x(\d+)$")


def quote(value: str) -> str:
    """A1111's ``infotext_utils.quote``: JSON-quote only values with ``,``, ``:`` or a newline."""
    if "," not in value and "\n" not in value and ":" not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return str(json.loads(value))
        except json.JSONDecodeError:
            return value
    return value


def format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) or abs(value) >= 1e16 else str(int(value))
    return str(value)


def build_parameters(prompt: str, negative_prompt: str, params: Mapping[str, object]) -> str:
    """The ``parameters`` text for one image; ``params`` maps A1111 key names to values."""
    ordered = [k for k in KEY_ORDER if k in params]
    ordered += [k for k in params if k not in KEY_ORDER and k not in TRAILING_KEYS]
    ordered += [k for k in TRAILING_KEYS if k in params]
    parts = []
    for key in ordered:
        value = params[key]
        if value is None:
            continue
        text = format_value(value)
        parts.append(key if text == key else f"{key}: {quote(text)}")
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(parts))
    return "\n".join(lines)


def parse_parameters(text: str) -> dict[str, str]:
    """Parse A1111 ``parameters`` text into ``{"Prompt", "Negative prompt", <key>: <value>}`` strings.

    ``Size``-like ``WxH`` values also yield ``<key>-1`` and ``<key>-2`` as A1111's parser does.
    """
    lines = text.strip().split("\n")
    result: dict[str, str] = {}
    last = lines[-1] if lines else ""
    if len(PARAM_RE.findall(last)) >= 3:
        lines = lines[:-1]
    else:
        last = ""
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result["Prompt"] = "\n".join(prompt_lines)
    result["Negative prompt"] = "\n".join(negative_lines)
    for key, raw in PARAM_RE.findall(last):
        value = unquote(raw.strip())
        result[key] = value
        size = SIZE_RE.match(value)
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
    return result


def format_lora_hashes(hashes: Mapping[str, str]) -> str:
    """The ``Lora hashes`` value: ``name: hash12, name2: hash12`` (quoted later as it has ``:``)."""
    return ", ".join(f"{name}: {digest}" for name, digest in hashes.items())
