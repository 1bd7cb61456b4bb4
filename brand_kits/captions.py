"""Training captions: the default DreamBooth-style caption and a linter for user-edited ones."""

from __future__ import annotations

import re

CAPTION_SOFT_MAX = 300


def default_caption(trigger_token: str, class_noun: str) -> str:
    """The caption used when the user writes none: ``a photo of <trigger> <class noun>``."""
    return f"a photo of {trigger_token} {class_noun}"


def lint_caption(caption: str, trigger_token: str) -> list[str]:
    """Warnings (not errors) about a caption; an empty list means it looks fine."""
    if not caption.strip():
        return [f"caption is empty; describe the image and include the trigger token '{trigger_token}'"]
    warnings: list[str] = []
    # CLIP lowercases its input, so the trigger matches case-insensitively, but only as a whole word.
    pattern = rf"(?<![A-Za-z0-9_]){re.escape(trigger_token)}(?![A-Za-z0-9_])"
    if not re.search(pattern, caption, flags=re.IGNORECASE):
        warnings.append(
            f"caption does not contain the trigger token '{trigger_token}'; add it so the LoRA "
            "learns to associate it with this image"
        )
    if len(caption) > CAPTION_SOFT_MAX:
        warnings.append(
            f"caption is {len(caption)} characters (over ~{CAPTION_SOFT_MAX}); the text encoder reads "
            "only about 77 tokens, so the end will be ignored: shorten it"
        )
    if "\n" in caption or "\r" in caption:
        warnings.append("caption contains line breaks; write it as a single line")
    return warnings
