"""Helpers shared by the tests: data dirs with the built-in model, product photos."""

from __future__ import annotations

import shutil
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from studio.builtin_model import builtin_folder
from studio.schemas import UploadedFile


def seed_data_dir(data_dir: Path, tiny_model_dir: Path) -> Path:
    """A data dir whose models folder already holds the built-in model (saves ~5 s per test)."""
    target = builtin_folder(data_dir / "models")
    if not target.exists():
        shutil.copytree(tiny_model_dir, target)
    return data_dir


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG (an upload, a mask)."""
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def product_photo(i: int, size: int = 96) -> bytes:
    """A distinct two-colour 'product' on a blue background, shifted a little per photo."""
    im = Image.new("RGB", (size, size), (20, 120, 200))
    draw = ImageDraw.Draw(im)
    draw.rectangle([20 + i * 4, 15, 60 + i * 4, 80], fill=(250, 200, 0))
    draw.rectangle([30 + i * 4, 30, 50 + i * 4, 50], fill=(200, 30, 30))
    buf = BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def product_uploads(n: int = 4) -> list[UploadedFile]:
    return [UploadedFile(name=f"photo_{i}.png", data=product_photo(i)) for i in range(n)]


def build_pdf(objects: list[bytes], *, trailer: bytes = b"", prev_self: bool = False) -> bytes:
    """Objects 1..n (object 1 is the catalog), a classic xref table with exact offsets, a trailer."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    prev = b" /Prev %d" % xref_at if prev_self else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s %s>>\n" % (len(objects) + 1, prev, trailer)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def minimal_pdf(text: str = "Brand colours: Sunflower #F4C20D", rgb: tuple[float, float, float] = (0.12, 0.23, 0.58)) -> bytes:
    """A small valid one-page PDF: a filled rectangle in ``rgb`` and a line of Helvetica-Bold text."""
    stream = (f"{rgb[0]} {rgb[1]} {rgb[2]} rg 50 600 200 100 re f "
              f"BT /F1 14 Tf 50 550 Td ({text}) Tj ET").encode()  # fmt: skip
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>",
    ])


def render_np(pipe: object, seed: int = 7) -> np.ndarray:
    """A 64 px, 3-step image of a fixed prompt as a float array (for exact LoRA on/off comparisons)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return pipe(  # type: ignore[operator]
        "photo of brandx bottle", num_inference_steps=3, height=64, width=64, generator=generator, output_type="np"
    ).images[0]
