"""Sections of the Brand kits page. Each is an ``st.fragment``: saving an edit reruns only the section,
not the page (no full reload, the other tabs keep their state)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from studio.api import Studio
from studio.errors import StudioError
from studio.schemas import (
    CaptionBulkEdit,
    KitView,
    PaletteEntry,
    RightsRequest,
    StyleGuideRequest,
    UploadedFile,
)
from studio.ui.widgets import attempt, lines, plain, swatch_strip


def _flash(kind: str, message: str) -> None:
    """Remember a message from a widget callback; the section shows it on its next run."""
    st.session_state["kit_flash"] = (kind, message)


def _show_flash() -> None:
    kind, message = st.session_state.pop("kit_flash", (None, ""))
    if kind == "success":
        st.success(message)
    elif kind == "error":
        st.error(message)


def _run(action: Callable[[], object], done: str) -> None:
    try:
        action()
    except StudioError as exc:
        _flash("error", plain(str(exc)))
    else:
        _flash("success", done)


def _save_captions(studio: Studio, kit_id: int, originals: dict[int, str]) -> None:
    edited = {pid: st.session_state[f"cap_{kit_id}_{pid}"] for pid in originals}
    changed = {pid: text for pid, text in edited.items() if text != originals[pid]}
    _run(lambda: studio.set_captions(kit_id, changed), f"Saved {len(changed)} captions.")


def _bulk_edit(studio: Studio, kit_id: int, photo_ids: list[int]) -> None:
    fields = {name: st.session_state[f"bulk_{name}_{kit_id}"] for name in ("prefix", "suffix", "find", "replace")}
    _run(lambda: studio.bulk_edit_captions(kit_id, CaptionBulkEdit.of(**fields)), "Edited every caption.")
    for pid in photo_ids:  # the per-photo fields show the new captions on this run
        st.session_state.pop(f"cap_{kit_id}_{pid}", None)


@st.fragment
def captions_section(studio: Studio, kit: KitView) -> None:
    _show_flash()
    photos = attempt(lambda: studio.list_assets(kit.id)) or []
    if not photos:
        st.info("Upload photos first.")
        return
    with st.form(f"captions_{kit.id}"):
        st.caption("One caption per photo; keep the trigger token in each.")
        for p in photos:
            st.text_input(p.label, p.caption, key=f"cap_{kit.id}_{p.id}")
        st.form_submit_button("Save captions", on_click=_save_captions,
                              args=(studio, kit.id, {p.id: p.caption for p in photos}))  # fmt: skip
    for p in photos:
        for w in p.caption_warnings:
            st.caption(plain(f"⚠ {p.label}: {w}"))
    with st.form(f"bulk_{kit.id}"):
        st.caption("Edit every caption at once")
        for col, name in zip(st.columns(4), ("prefix", "suffix", "find", "replace"), strict=True):
            col.text_input(name.capitalize(), key=f"bulk_{name}_{kit.id}")
        st.form_submit_button("Apply to all captions", on_click=_bulk_edit,
                              args=(studio, kit.id, [p.id for p in photos]))  # fmt: skip


STYLE_LISTS = (("fonts", "Fonts (one per line)"), ("tone_words", "Tone words"), ("dos", "Do's"),
               ("donts", "Don'ts"), ("required_terms", "Required terms"), ("banned_terms", "Banned terms"))  # fmt: skip


def _save_style(studio: Studio, kit_id: int) -> None:
    def value(name: str) -> str:
        return str(st.session_state[f"style_{name}_{kit_id}"])

    palette = tuple(PaletteEntry(hex=line.split(maxsplit=1)[0], name=(line.split(maxsplit=1) + [""])[1])
                    for line in lines(value("palette")))  # fmt: skip

    def save() -> None:
        studio.set_style_guide(kit_id, StyleGuideRequest.of(
            palette=palette, **{name: lines(value(name)) for name, _ in STYLE_LISTS}))  # fmt: skip
        st.session_state.pop(f"suggested_{kit_id}", None)
        for name in ("palette", *(n for n, _ in STYLE_LISTS)):
            st.session_state.pop(f"style_{name}_{kit_id}", None)

    _run(save, "Style guide saved.")


@st.fragment
def style_section(studio: Studio, kit: KitView) -> None:
    _show_flash()
    guide = attempt(lambda: studio.get_style_guide(kit.id))
    if guide is None:
        return
    suggested = st.session_state.get(f"suggested_{kit.id}", {})
    if guide.palette:
        st.image(swatch_strip([(c.hex, c.name) for c in guide.palette]))
        st.text(" · ".join(f"{c.name} {c.hex}" for c in guide.palette))
    with st.form(f"style_{kit.id}"):
        st.text_area("Palette (one per line: #RRGGBB name)", key=f"style_palette_{kit.id}",
                     value="\n".join(f"{c.hex} {c.name}" for c in guide.palette) + suggested.get("palette", ""))  # fmt: skip
        for name, label in STYLE_LISTS:
            st.text_area(label, "\n".join(getattr(guide, name)) + suggested.get(name, ""), key=f"style_{name}_{kit.id}")
        st.form_submit_button("Save style guide", type="primary", on_click=_save_style, args=(studio, kit.id))
    st.text(f"Style fragment: {guide.style_fragment or '-'}\nNegative prompt: {guide.negative_prompt or '-'}")
    _extraction(studio, kit)


def _extraction(studio: Studio, kit: KitView) -> None:
    st.caption("Read a PDF style guide or a reference image: what is found is shown for you to confirm.")
    upload = st.file_uploader("PDF style guide or reference image", type=["pdf", "png", "jpg", "jpeg", "webp"],
                              key=f"guide_{kit.id}")  # fmt: skip
    if upload is None or not st.button("Read it", key=f"read_{kit.id}"):
        return
    file = UploadedFile(name=upload.name, data=upload.getvalue())
    if upload.name.lower().endswith(".pdf"):
        found = attempt(lambda: studio.extract_style_from_pdf(file))
        if found is None:
            return
        colors, fonts = [(c.hex, c.name) for c in found.colors], list(found.fonts)
        st.text(f"{found.pages} pages. Text starts: {found.text_excerpt[:300]}")
    else:
        swatches = attempt(lambda: studio.extract_palette(file)) or ()
        colors, fonts = [(s.hex, s.name) for s in swatches], []
    if colors:
        st.image(swatch_strip(colors))
    st.text("Colours: " + ", ".join(f"{h} {n}" for h, n in colors) + ("\nFonts: " + ", ".join(fonts) if fonts else ""))
    st.session_state[f"suggested_{kit.id}"] = {
        "palette": "".join(f"\n{h} {n}" for h, n in colors), "fonts": "".join(f"\n{f}" for f in fonts),
    }  # fmt: skip
    st.info("Added to the form above as suggestions: edit them, then press Save style guide.")


@st.fragment
def rights_section(studio: Studio, kit: KitView) -> None:
    photos = attempt(lambda: studio.list_assets(kit.id)) or []
    if not photos:
        st.info("Upload photos first.")
        return
    st.caption("Where each photo came from, its licence, and whether the people or owners shown consented. "
               "This goes into the LoRA's metadata.")  # fmt: skip
    for p in photos:
        with st.form(f"rights_{kit.id}_{p.id}"):
            st.text(p.label)
            c1, c2, c3 = st.columns([3, 2, 1])
            source = c1.text_input("Source", p.source, key=f"src_{p.id}")
            licence = c2.text_input("Licence", p.licence, key=f"lic_{p.id}")
            consent = c3.checkbox("Consent", p.consent, key=f"con_{p.id}")
            if st.form_submit_button("Save") and _save_rights(studio, kit.id, p.id, source, licence, consent):
                st.success("Saved.")


def _save_rights(studio: Studio, kit_id: int, asset_id: int, source: str, licence: str, consent: bool) -> bool:
    req = attempt(lambda: RightsRequest.of(source=source, licence=licence, consent=consent))
    return req is not None and attempt(lambda: studio.set_rights(kit_id, asset_id, req)) is not None


@st.fragment
def export_section(studio: Studio, kit: KitView) -> None:
    versions = attempt(lambda: studio.list_versions(kit.id)) or []
    st.text("Versions: " + (", ".join(f"v{v.number} ({v.photo_count} photos)" for v in versions) or "none yet"))
    if st.button("Freeze a version now", key=f"freeze_{kit.id}"):
        v = attempt(lambda: studio.create_version(kit.id))
        if v is not None:
            st.success(f"Version {v.number}: {v.photo_count} photos.")
    c1, c2, c3 = st.columns(3)
    for col, fmt, label in ((c1, "imagefolder", "Hugging Face imagefolder"), (c2, "kohya", "kohya folders")):
        if col.button(f"Prepare {label} (.zip)", key=f"prep_{fmt}_{kit.id}"):
            data = attempt(lambda f=fmt: studio.export_training_zip(kit.id, f))  # type: ignore[misc]
            if data is not None:
                col.download_button(f"Download {label}", data, file_name=f"{kit.slug}-{fmt}.zip",
                                    mime="application/zip", key=f"dl_{fmt}_{kit.id}")  # fmt: skip
    if c3.button("Prepare kit archive", key=f"prep_archive_{kit.id}"):
        data = attempt(lambda: studio.export_kit_archive(kit.id))
        if data is not None:
            c3.download_button("Download kit archive", data, file_name=f"{kit.slug}.brandkit.zip",
                               mime="application/zip", key=f"dl_archive_{kit.id}")  # fmt: skip
    archive = st.file_uploader("Import a kit archive", type=["zip"], key="import_archive")
    if archive is not None and st.button("Import kit"):
        imported = attempt(lambda: studio.import_kit_archive(archive.getvalue()))
        if imported is not None:
            st.success(f"Imported kit '{plain(imported.name)}' with {imported.photo_count} photos.")
