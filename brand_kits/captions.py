"""Training captions: the default DreamBooth-style caption (editing and linting: caption_edit)."""

from __future__ import annotations


def default_caption(trigger_token: str, class_noun: str) -> str:
    """The caption used when the user writes none: ``a photo of <trigger> <class noun>``."""
    return f"a photo of {trigger_token} {class_noun}"
