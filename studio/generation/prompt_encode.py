"""Prompt -> diffusers call arguments: plain strings, or A1111-style weighted, chunked embeddings.

A prompt without emphasis syntax that fits in one chunk goes to the pipeline as a string, exactly as
before (same pixels). Otherwise (``(word:1.2)``, ``[word]``, escapes, ``BREAK``, or over 75 tokens)
both prompts are encoded here with AUTOMATIC1111's method (``sd_hijack_clip.py``):

1. parse into weighted runs and lay their tokens out in 75-token chunks
   (:mod:`studio.generation.prompt_weights`);
2. pad the prompt and negative prompt to the same chunk count with empty chunks (A1111's "pad
   prompt/negative prompt to be same length": diffusers batches both through the UNet together);
3. encode each chunk alone; SD 1.x/2.x use the last hidden state, SDXL the penultimate layer of each
   encoder, concatenated on features, as diffusers' own ``encode_prompt`` does;
4. multiply each token's embedding by its weight, then rescale the chunk to its original mean;
5. concatenate the chunks on the token axis; SDXL's pooled embedding is the last encoder's pooled
   output of the first chunk, unweighted (as A1111).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.generation.prompt_weights import (
    TokenChunk,
    chunk_tokens,
    empty_chunk,
    is_plain,
    parse_prompt_attention,
)

#: A chunk mean below this share of the mean absolute embedding is taken as zero (see emphasize).
DEGENERATE_MEAN = 1e-4
#: CLIP's positions; some tokenizer configs report a huge model_max_length.
MAX_POSITIONS = 77


@dataclass(frozen=True)
class EncodedPrompt:
    embeds: Any  # torch.Tensor (1, 77 * chunks, features)
    pooled: Any  # torch.Tensor (1, projection) for SDXL, else None


def prompt_arguments(pipe: Any, prompt: str, negative_prompt: str, count: int) -> tuple[dict[str, Any], list[str]]:
    """Keyword arguments for ``pipe(...)`` for ``count`` images, and notes for the user.

    Notes report each prompt's token count when it needs more than one chunk (nothing is cut off).
    """
    pairs = encoder_pairs(pipe)
    layouts = {text: [layout(tok, text) for tok, _ in pairs] for text in (prompt, negative_prompt)}
    notes = []
    for label, text in (("prompt", prompt), ("negative prompt", negative_prompt)):
        chunks, tokens = layouts[text][0]
        if len(chunks) > 1:
            notes.append(f"{label} is {tokens} tokens; encoded as {len(chunks)} chunks of "
                         f"{chunk_length(pairs[0][0])} (AUTOMATIC1111's long-prompt method): no token is cut")  # fmt: skip
    fits = all(len(chunks) == 1 for text in layouts for chunks, _ in layouts[text])
    if fits and is_plain(prompt) and is_plain(negative_prompt):
        return {"prompt": [prompt] * count, "negative_prompt": [negative_prompt] * count}, notes
    positive, negative = encode_pair(pipe, pairs, [c for c, _ in layouts[prompt]], [c for c, _ in layouts[negative_prompt]])
    args = {
        "prompt_embeds": positive.embeds.repeat(count, 1, 1),
        "negative_prompt_embeds": negative.embeds.repeat(count, 1, 1),
    }
    if positive.pooled is not None:
        args["pooled_prompt_embeds"] = positive.pooled.repeat(count, 1)
        args["negative_pooled_prompt_embeds"] = negative.pooled.repeat(count, 1)
    return args, notes


def encoder_pairs(pipe: Any) -> list[tuple[Any, Any]]:
    """(tokenizer, text encoder) of each encoder the pipeline has: one for SD 1.x/2.x, two for SDXL."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if hasattr(pipe, "text_encoder_2"):
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]


def layout(tokenizer: Any, text: str) -> tuple[list[TokenChunk], int]:
    """The text's weighted token chunks for this tokenizer, and its token count."""
    parsed = parse_prompt_attention(text)
    pieces = ["" if p.is_break else p.text for p in parsed]
    tokenized = tokenizer(pieces, truncation=False, add_special_tokens=False)["input_ids"]
    return chunk_tokens(
        parsed, [list(t) for t in tokenized], bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id,
        pad=_pad_id(tokenizer), comma=tokenizer.get_vocab().get(",</w>"),
        chunk_length=chunk_length(tokenizer),
    )  # fmt: skip


def encode_pair(
    pipe: Any, pairs: list[tuple[Any, Any]], positive: list[list[TokenChunk]], negative: list[list[TokenChunk]]
) -> tuple[EncodedPrompt, EncodedPrompt]:
    """Encode prompt and negative prompt, padded with empty chunks to one common chunk count."""
    total = max(len(chunks) for chunks in [*positive, *negative])
    padded = []
    for per_encoder in (positive, negative):
        padded.append([
            chunks + [_empty(tok)] * (total - len(chunks)) for chunks, (tok, _) in zip(per_encoder, pairs, strict=True)
        ])  # fmt: skip
    sdxl = hasattr(pipe, "text_encoder_2")
    return encode_chunks(pairs, padded[0], sdxl), encode_chunks(pairs, padded[1], sdxl)


def encode_chunks(pairs: list[tuple[Any, Any]], per_encoder: list[list[TokenChunk]], sdxl: bool) -> EncodedPrompt:
    """Steps 3-5 of the module doc for one prompt."""
    import torch

    pooled = None
    features = []
    for (_, encoder), chunks in zip(pairs, per_encoder, strict=True):
        zs = []
        for index, chunk in enumerate(chunks):
            ids = torch.tensor([chunk.tokens], dtype=torch.long, device=encoder.device)
            if sdxl:
                out = encoder(ids, output_hidden_states=True)
                z = out.hidden_states[-2]
                if index == 0 and out[0].ndim == 2:
                    pooled = out[0]
            else:
                z = encoder(ids)[0]
            zs.append(emphasize(z, chunk.multipliers))
        features.append(torch.cat(zs, dim=1))
    return EncodedPrompt(embeds=torch.cat(features, dim=-1), pooled=pooled)


def emphasize(z: Any, multipliers: list[float]) -> Any:
    """A1111's "Original" emphasis: scale each token's embedding, then restore the chunk's mean.

    Guard (not in A1111): when the weighted mean is ~0 next to the embeddings' magnitude (e.g. an
    encoder whose final layer norm has no bias), the mean is kept already and dividing by it would
    blow the embeddings up to inf/NaN (black images); then only the weights are applied.
    """
    import torch

    if all(m == 1.0 for m in multipliers):
        return z
    weights = torch.tensor(multipliers, dtype=z.dtype, device=z.device).reshape(1, -1, 1)
    original_mean = z.mean()
    z = z * weights.expand(z.shape)
    new_mean = z.mean()
    if new_mean.abs() <= DEGENERATE_MEAN * z.abs().mean():
        return z
    return z * (original_mean / new_mean)


def chunk_length(tokenizer: Any) -> int:
    """Prompt tokens per chunk: the encoder's 77 positions less BOS and EOS (75, as A1111)."""
    return min(int(tokenizer.model_max_length), MAX_POSITIONS) - 2


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return int(tokenizer.eos_token_id if pad is None else pad)


def _empty(tokenizer: Any) -> TokenChunk:
    return empty_chunk(bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, pad=_pad_id(tokenizer),
                       chunk_length=chunk_length(tokenizer))  # fmt: skip
