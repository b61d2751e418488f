"""The sidebar's settings in this session and their mirror in the link (the URL's query string): the first
script run takes them from the link (bad values fall back, with warnings), later runs read the widgets."""
from __future__ import annotations

import streamlit as st

from vaegmm.model.params import KEYS, parse_query, settings_equal, to_query


def widget_key(key: str) -> str:
    """The sidebar widget's key for the setting ``key`` (``cfg_n``, ``cfg_alpha``...)."""
    return f"cfg_{key}"


def init_settings() -> None:
    """First run of the session: settings from the link (bad values fall back with a warning). Later runs:
    re-seed widget values that Streamlit dropped while another page was shown."""
    ss = st.session_state
    if "_settings" not in ss:
        settings, warnings = parse_query(st.query_params.to_dict())
        ss["_settings"] = settings
        ss["_link_settings"] = dict(settings)
        ss["_link_warnings"] = warnings
    for key in KEYS:
        if widget_key(key) not in ss:
            ss[widget_key(key)] = ss["_settings"][key]


def current_settings() -> dict:
    """The settings the sidebar's widgets hold now."""
    settings = {key: st.session_state[widget_key(key)] for key in KEYS}
    settings["digits"] = sorted(settings["digits"])
    return settings


def mirror_to_url(settings: dict) -> None:
    """Keep ``settings`` in the session and in the link (rewritten only when it differs)."""
    st.session_state["_settings"] = settings
    query = to_query(settings)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def pending_link_warnings(settings: dict) -> list[str]:
    """Warnings about the link's ignored query parameters, while the settings are still the link's."""
    ss = st.session_state
    warnings = ss.get("_link_warnings") or []
    return list(warnings) if warnings and settings_equal(settings, ss["_link_settings"]) else []
