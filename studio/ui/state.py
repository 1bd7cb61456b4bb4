"""The one Studio per server process, behind ``st.cache_resource`` (keyed by the settings in force)."""

from __future__ import annotations

import streamlit as st

from studio.api import Studio, open_studio
from studio.errors import StudioError
from studio.settings import Settings
from studio.ui.widgets import plain


@st.cache_resource(show_spinner="Opening the studio...")
def _open(settings_json: str) -> Studio:
    return open_studio(Settings.model_validate_json(settings_json))


def get_studio() -> Studio:
    """The shared Studio; on a broken data store, show the reason and stop the page."""
    try:
        return _open(Settings().model_dump_json())
    except StudioError as exc:
        st.error("The studio cannot open its data: " + plain(str(exc)))
        st.stop()
        raise  # st.stop() raises; this keeps type checkers honest
