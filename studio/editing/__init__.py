"""Editing: A/B variants, overlay layers, channel formats, brand checks, review and export packs.

Pure logic on images and data (PIL, numpy, pydantic, :mod:`studio.formats`): no database, no storage,
brand_kits, training or generation imports, no torch. The facade (:mod:`studio.api`) combines it with
storage and the generation engine. Nothing heavy runs at import.
"""
