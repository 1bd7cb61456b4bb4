"""Brand-kit domain: kit identity, upload validation, captions and training-set export.

Pure Python + Pillow + numpy: no database, no torch, no UI, and no imports of the sibling packages.
"""

from __future__ import annotations

from brand_kits.archive import ArchiveLimits, ImportedKit, export_kit_archive, read_kit_archive
from brand_kits.caption_edit import apply_bulk_edit, lint_caption, validate_caption
from brand_kits.captions import default_caption
from brand_kits.colors import delta_e, hex_to_rgb, nearest_color_name, normalize_hex, rgb_to_hex
from brand_kits.dedupe import find_near_duplicates, hamming, perceptual_hash
from brand_kits.errors import (
    ImageTooLarge,
    ImageTooSmall,
    InvalidImage,
    InvalidKitField,
    KitError,
    UnsupportedImageFormat,
)
from brand_kits.exports import write_imagefolder, write_kohya_folder
from brand_kits.identity import KitIdentity, make_identity
from brand_kits.ingest import (
    ALLOWED_FORMATS,
    IngestLimits,
    ValidatedImage,
    iter_folder_images,
    safe_label,
    validate_image,
)
from brand_kits.palette import Swatch, extract_palette
from brand_kits.pdf_guide import ExtractedGuide, extract_pdf_guide
from brand_kits.snapshot import AssetRecord, KitSnapshot
from brand_kits.style import (
    PaletteColor,
    StyleGuide,
    find_banned_terms,
    make_style_guide,
    missing_required_terms,
    negative_prompt,
    style_fragment,
)
from brand_kits.trainset import TrainingItem, write_training_folder

__all__ = [
    "ALLOWED_FORMATS",
    "ArchiveLimits",
    "AssetRecord",
    "ExtractedGuide",
    "ImageTooLarge",
    "ImageTooSmall",
    "ImportedKit",
    "IngestLimits",
    "InvalidImage",
    "InvalidKitField",
    "KitError",
    "KitIdentity",
    "KitSnapshot",
    "PaletteColor",
    "StyleGuide",
    "Swatch",
    "TrainingItem",
    "UnsupportedImageFormat",
    "ValidatedImage",
    "apply_bulk_edit",
    "default_caption",
    "delta_e",
    "export_kit_archive",
    "extract_palette",
    "extract_pdf_guide",
    "find_banned_terms",
    "find_near_duplicates",
    "hamming",
    "hex_to_rgb",
    "iter_folder_images",
    "lint_caption",
    "make_identity",
    "make_style_guide",
    "missing_required_terms",
    "nearest_color_name",
    "negative_prompt",
    "normalize_hex",
    "perceptual_hash",
    "read_kit_archive",
    "rgb_to_hex",
    "safe_label",
    "style_fragment",
    "validate_caption",
    "validate_image",
    "write_imagefolder",
    "write_kohya_folder",
    "write_training_folder",
]
