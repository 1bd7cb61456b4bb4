"""Brand-kit domain: kit identity, upload validation, captions and training-set export.

Pure Python + Pillow + numpy: no database, no torch, no UI, and no imports of the sibling packages.
"""

from __future__ import annotations

from brand_kits.captions import default_caption, lint_caption
from brand_kits.errors import (
    ImageTooLarge,
    ImageTooSmall,
    InvalidImage,
    InvalidKitField,
    KitError,
    UnsupportedImageFormat,
)
from brand_kits.identity import KitIdentity, make_identity
from brand_kits.ingest import (
    ALLOWED_FORMATS,
    IngestLimits,
    ValidatedImage,
    iter_folder_images,
    safe_label,
    validate_image,
)
from brand_kits.trainset import TrainingItem, write_training_folder

__all__ = [
    "ALLOWED_FORMATS",
    "ImageTooLarge",
    "ImageTooSmall",
    "IngestLimits",
    "InvalidImage",
    "InvalidKitField",
    "KitError",
    "KitIdentity",
    "TrainingItem",
    "UnsupportedImageFormat",
    "ValidatedImage",
    "default_caption",
    "iter_folder_images",
    "lint_caption",
    "make_identity",
    "safe_label",
    "validate_image",
    "write_training_folder",
]
