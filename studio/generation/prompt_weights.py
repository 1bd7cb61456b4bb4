"""AUTOMATIC1111 prompt emphasis and long-prompt chunking, on plain strings and token ids (no torch).

Syntax (A1111 ``modules/prompt_parser.py`` ``parse_prompt_attention``):

- ``(word)`` multiplies the weight by 1.1, ``[word]`` by 1/1.1; brackets nest and multiply;
- ``(word:1.3)`` sets the factor explicitly (``(word:0.5)`` de-emphasises);
- ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are literal characters;
- ``BREAK`` (upper case, a word on its own) ends the current 75-token chunk early.

User text never raises: as in A1111, a ``)`` or ``]`` with nothing to close is literal text, and a
``(`` or ``[`` that is never closed weights everything after it (the bracket itself is dropped).
One deliberate difference: A1111 multiplies a ``BREAK`` inside brackets into a negative-weight token;
here ``BREAK`` always stays a chunk break. ``<lora:...>`` is plain text: it is never resolved.

Chunking (A1111 ``modules/sd_hijack_clip.py`` ``tokenize_line``): the fragments' tokens are laid out in
chunks of 75; a chunk that fills up within 20 tokens after a comma moves the words after that comma
to the next chunk; every chunk becomes ``BOS + 75 tokens + EOS`` padded to 77 (the pad token after
the first EOS, as the diffusers tokenizer pads). The text encoder encodes each chunk alone and the
results are concatenated (see :mod:`studio.generation.prompt_encode`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ROUND_FACTOR = 1.1
SQUARE_FACTOR = 1 / 1.1
CHUNK_LENGTH = 75
COMMA_BACKTRACK = 20
BREAK = "BREAK"

# The alternatives of A1111's ``re_attention``, in its order (order matters: escapes first).
ATTENTION_RE = re.compile(
    r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|
\(|\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
BREAK_RE = re.compile(r"\s*\bBREAK\b\s*", re.S)


@dataclass(frozen=True)
class WeightedText:
    """A run of prompt text and its attention weight; ``is_break`` marks a ``BREAK``."""

    text: str
    weight: float
    is_break: bool = False


@dataclass
class TokenChunk:
    """One encoder input: ``BOS + tokens + EOS + pad`` (77 ids) and one weight per id."""

    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)


def parse_prompt_attention(text: str) -> list[WeightedText]:
    """Split ``text`` into runs of equal weight, exactly as A1111 does (see the module doc).

    >>> [(p.text, round(p.weight, 4)) for p in parse_prompt_attention("a (b:1.5) [c]")]
    [('a ', 1.0), ('b', 1.5), (' ', 1.0), ('c', 0.9091)]
    """
    res: list[list[object]] = []  # [text, weight, is_break]
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, factor: float) -> None:
        for item in res[start:]:
            if not item[2]:
                item[1] = float(item[1]) * factor  # type: ignore[arg-type]

    for match in ATTENTION_RE.finditer(text):
        part, weight = match.group(0), match.group(1)
        if part.startswith("\\"):
            res.append([part[1:], 1.0, False])
        elif part == "(":
            round_brackets.append(len(res))
        elif part == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), _number(weight))
        elif part == ")" and round_brackets:
            multiply_range(round_brackets.pop(), ROUND_FACTOR)
        elif part == "]" and square_brackets:
            multiply_range(square_brackets.pop(), SQUARE_FACTOR)
        else:
            for i, piece in enumerate(BREAK_RE.split(part)):
                if i > 0:
                    res.append([BREAK, -1.0, True])
                res.append([piece, 1.0, False])
    for pos in round_brackets:
        multiply_range(pos, ROUND_FACTOR)
    for pos in square_brackets:
        multiply_range(pos, SQUARE_FACTOR)
    return _merge([WeightedText(str(t), float(w), bool(b)) for t, w, b in res])  # type: ignore[arg-type]


def _number(text: str) -> float:
    """A1111 calls ``float()`` on ``[+-]?[.\\d]+``; text like ``1.2.3`` is not a number: weight 1."""
    try:
        return float(text)
    except ValueError:
        return 1.0


def _merge(parts: list[WeightedText]) -> list[WeightedText]:
    """Join neighbours of equal weight (never across a BREAK); an empty prompt is one empty run."""
    out: list[WeightedText] = []
    for part in parts:
        if out and not part.is_break and not out[-1].is_break and out[-1].weight == part.weight:
            out[-1] = WeightedText(out[-1].text + part.text, part.weight)
        else:
            out.append(part)
    return out or [WeightedText("", 1.0)]


def is_plain(prompt: str) -> bool:
    """True when the prompt has no emphasis, escape or BREAK: the parse is the text itself at 1.0."""
    return parse_prompt_attention(prompt) == [WeightedText(prompt, 1.0)]


def chunk_tokens(
    parsed: list[WeightedText],
    tokenized: list[list[int]],
    *,
    bos: int,
    eos: int,
    pad: int,
    comma: int | None,
    chunk_length: int = CHUNK_LENGTH,
) -> tuple[list[TokenChunk], int]:
    """Lay the fragments' tokens (``tokenized[i]`` for ``parsed[i]``, no BOS/EOS) out in chunks.

    Returns the chunks (each ``chunk_length + 2`` ids) and the number of prompt tokens.
    """
    chunks: list[TokenChunk] = []
    chunk = TokenChunk()
    last_comma = -1

    def close(current: TokenChunk) -> TokenChunk:
        nonlocal last_comma
        fill = chunk_length - len(current.tokens)
        current.tokens = [bos, *current.tokens, eos] + [pad] * fill
        current.multipliers = [1.0, *current.multipliers, 1.0] + [1.0] * fill
        last_comma = -1
        chunks.append(current)
        return TokenChunk()

    for tokens, part in zip(tokenized, parsed, strict=True):
        if part.is_break:
            chunk = close(chunk)
            continue
        for token in tokens:
            if token == comma:
                last_comma = len(chunk.tokens)
            elif len(chunk.tokens) == chunk_length and last_comma != -1 and chunk_length - last_comma <= COMMA_BACKTRACK:
                cut = last_comma + 1
                moved = TokenChunk(chunk.tokens[cut:], chunk.multipliers[cut:])
                del chunk.tokens[cut:], chunk.multipliers[cut:]
                close(chunk)
                chunk = moved
            if len(chunk.tokens) == chunk_length:
                chunk = close(chunk)
            chunk.tokens.append(token)
            chunk.multipliers.append(part.weight)
    if chunk.tokens or not chunks:
        close(chunk)
    return chunks, sum(len(t) for t, p in zip(tokenized, parsed, strict=True) if not p.is_break)


def empty_chunk(*, bos: int, eos: int, pad: int, chunk_length: int = CHUNK_LENGTH) -> TokenChunk:
    """The chunk of an empty prompt: what the shorter of prompt / negative prompt is padded with."""
    return TokenChunk([bos, eos] + [pad] * chunk_length, [1.0] * (chunk_length + 2))
