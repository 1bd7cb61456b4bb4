"""Copy the browser journey's screenshots that the README's tour shows into ``tests/e2e/tour/``.

``make tour`` runs the journey with its artifacts in ``data/e2e-artifacts`` and then this script:
each picked screenshot is scaled to at most :data:`WIDTH` px wide and saved as an optimised PNG, so
the README shows exactly what the last journey saw.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

#: (screenshot name in the journey, file in the tour) in the README's order.
PICKS = (
    ("kit-created", "1-kit.png"),
    ("train-progress", "2-training.png"),
    ("train-succeeded", "3-trained.png"),
    ("generated", "4-generated.png"),
    ("ab-cells", "5-ab-cells.png"),
    ("review-approve", "6-review.png"),
    ("export-built", "7-export.png"),
)
WIDTH = 1100


def main(artifacts: Path, tour: Path) -> None:
    tour.mkdir(parents=True, exist_ok=True)
    for name, target in PICKS:
        matches = sorted(artifacts.glob(f"[0-9][0-9]-{name}.png"))
        if not matches:
            raise SystemExit(f"no screenshot named {name!r} in {artifacts}: run the journey first (make tour)")
        with Image.open(matches[-1]) as shot:
            image = shot.convert("RGB")
        if image.width > WIDTH:
            image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.Resampling.LANCZOS)
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(tour / target, optimize=True)
        print(f"{matches[-1].name} -> {tour / target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
