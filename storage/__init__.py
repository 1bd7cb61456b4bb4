"""storage: SQLAlchemy models and repositories, engine pragmas, Alembic migrations, blob store.

No torch, no streamlit. The facade opens one :class:`Database` and one :class:`BlobStore` and runs
each user action as ``with db.session() as s:`` using the repositories below.
"""

from __future__ import annotations

from storage.blobs import BlobRef, BlobStore
from storage.campaigns import (
    Campaign,
    CampaignExport,
    CampaignRepo,
    ConcurrentUpdate,
    Creative,
    CreativeRepo,
    ExportRepo,
    Variant,
    VariantRepo,
    VariantReview,
)
from storage.database import Database
from storage.engine import make_engine
from storage.errors import (
    BlobCorrupt,
    BlobNotFound,
    DatabaseCorrupt,
    IntegrityViolation,
    ReadOnlyStorage,
    RowNotFound,
    SchemaTooNew,
    StorageError,
    StorageFull,
)
from storage.history import GenerationFilters, PageCursor
from storage.kits import AssetRepo, KitRepo, KitVersionRepo
from storage.migrate import HEAD, MigrationReport, check_integrity, current_revision, upgrade_to_head
from storage.repos import (
    BlobRepo,
    GenerationRepo,
    JobRepo,
    LoraRepo,
    TrainingRunRepo,
    TrainingSampleRepo,
)

__all__ = [
    "HEAD",
    "AssetRepo",
    "BlobCorrupt",
    "BlobNotFound",
    "BlobRef",
    "BlobRepo",
    "BlobStore",
    "Campaign",
    "CampaignExport",
    "CampaignRepo",
    "ConcurrentUpdate",
    "Creative",
    "CreativeRepo",
    "Database",
    "DatabaseCorrupt",
    "ExportRepo",
    "GenerationFilters",
    "GenerationRepo",
    "IntegrityViolation",
    "JobRepo",
    "KitRepo",
    "KitVersionRepo",
    "LoraRepo",
    "MigrationReport",
    "PageCursor",
    "ReadOnlyStorage",
    "RowNotFound",
    "SchemaTooNew",
    "StorageError",
    "StorageFull",
    "TrainingRunRepo",
    "TrainingSampleRepo",
    "Variant",
    "VariantRepo",
    "VariantReview",
    "check_integrity",
    "current_revision",
    "make_engine",
    "upgrade_to_head",
]
