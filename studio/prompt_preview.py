"""The composed prompt, before generating: what the kit adds and how many tokens/chunks it takes.

Shown under the prompt box on the Generate page and by ``brand-studio prompt``. Uses
only the base model's tokenizer (no pipeline load), so it is cheap enough to run on every keystroke.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.generation.prompt_encode import chunk_length, layout
from studio.generation_run import compose_prompt
from studio.schemas import ComposedPromptView, GenerateRequest

if TYPE_CHECKING:
    from studio.api import Studio


@lru_cache(maxsize=4)
def _tokenizer(model_path: Path) -> Any:
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(model_path, subfolder="tokenizer", local_files_only=True)


def preview_prompt(studio: Studio, req: GenerateRequest) -> ComposedPromptView:
    """Compose ``req``'s prompts as generation will, and lay them out with the model's tokenizer."""
    prompt, negative = compose_prompt(studio, req)
    tokenizer = _tokenizer(studio.resolve().path)
    size = chunk_length(tokenizer)
    (pos_chunks, pos_tokens), (neg_chunks, neg_tokens) = layout(tokenizer, prompt), layout(tokenizer, negative)
    notes = [
        f"{label} is {tokens} tokens: {len(chunks)} chunks of {size}, each encoded (AUTOMATIC1111's long-prompt "
        "method); nothing is cut, but words in later chunks weigh less"
        for label, chunks, tokens in (("prompt", pos_chunks, pos_tokens), ("negative prompt", neg_chunks, neg_tokens))
        if len(chunks) > 1
    ]
    return ComposedPromptView(
        prompt=prompt, negative_prompt=negative, prompt_tokens=pos_tokens, negative_tokens=neg_tokens,
        chunk_length=size, prompt_chunks=len(pos_chunks), negative_chunks=len(neg_chunks), notes=tuple(notes),
    )  # fmt: skip
