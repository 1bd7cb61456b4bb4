"""Count prompt tokens with the base model's own tokenizer (for caption lint and prompt limits)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=4)
def token_counter(model_path: Path) -> Callable[[str], int]:
    """A function giving the length of a text's input_ids (start and end markers included)."""
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(model_path, subfolder="tokenizer", local_files_only=True)

    def count(text: str) -> int:
        return len(tokenizer(text, truncation=False).input_ids)

    return count
