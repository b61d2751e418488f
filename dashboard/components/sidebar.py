"""The live page's sidebar: the experiment's widgets (mirrored into the link) and the link's warnings."""
from __future__ import annotations

import streamlit as st

from dashboard.components.markup import escape_markdown
from dashboard.state.link import current_settings, init_settings, mirror_to_url, pending_link_warnings, widget_key
from vaegmm.model.params import FIELDS, GMM_LABELS, PRESET_LABELS, preset_settings
from vaegmm.model.vae import precision_note, resolve_device

_w = widget_key


def _apply_preset() -> None:
    for key, value in preset_settings(st.session_state[_w("preset")]).items():
        st.session_state[_w(key)] = value


def _digits_changed() -> None:
    digits = st.session_state[_w("digits")]
    if digits:
        st.session_state[_w("k")] = len(digits)


def sidebar_settings(disabled: bool = False) -> dict:
    """The experiment's widgets; returns the settings dict and mirrors it into the URL."""
    init_settings()
    sb = st.sidebar
    sb.selectbox("Preset", list(PRESET_LABELS), format_func=PRESET_LABELS.get, key=_w("preset"),
                 on_change=_apply_preset, disabled=disabled,
                 help="Fills every field below; any field can then be changed.")
    f = FIELDS
    sb.number_input(f["n"].label, int(f["n"].lo), int(f["n"].hi), step=100, key=_w("n"), help=f["n"].help,
                    disabled=disabled)
    sb.multiselect(f["digits"].label, list(range(10)), key=_w("digits"), on_change=_digits_changed,
                   help=f["digits"].help, disabled=disabled)
    c1, c2 = sb.columns(2)
    c1.number_input(f["k"].label, int(f["k"].lo), int(f["k"].hi), step=1, key=_w("k"), help=f["k"].help,
                    disabled=disabled)
    c2.number_input(f["latent"].label, int(f["latent"].lo), int(f["latent"].hi), step=1, key=_w("latent"),
                    help=f["latent"].help, disabled=disabled)
    sb.slider(f["alpha"].label, float(f["alpha"].lo), float(f["alpha"].hi), step=0.1, key=_w("alpha"),
              help=f["alpha"].help, disabled=disabled)
    c1, c2 = sb.columns(2)
    c1.number_input(f["iterations"].label, int(f["iterations"].lo), int(f["iterations"].hi), step=1,
                    key=_w("iterations"), help=f["iterations"].help, disabled=disabled)
    c2.number_input(f["epochs"].label, int(f["epochs"].lo), int(f["epochs"].hi), step=10, key=_w("epochs"),
                    disabled=disabled)
    c1, c2 = sb.columns(2)
    c1.number_input(f["batch"].label, int(f["batch"].lo), int(f["batch"].hi), step=50, key=_w("batch"),
                    disabled=disabled)
    c2.number_input(f["seed"].label, int(f["seed"].lo), int(f["seed"].hi), step=1, key=_w("seed"),
                    disabled=disabled)
    sb.radio(f["gmm"].label, list(f["gmm"].choices), horizontal=True, key=_w("gmm"), help=f["gmm"].help,
             format_func=GMM_LABELS.get, disabled=disabled)
    sb.radio(f["codes"].label, list(f["codes"].choices), horizontal=True, key=_w("codes"), help=f["codes"].help,
             disabled=disabled)
    sb.toggle(f["feedback"].label, key=_w("feedback"), help=f["feedback"].help, disabled=disabled)
    sb.radio(f["precision"].label, list(f["precision"].choices), horizontal=True, key=_w("precision"),
             help=f["precision"].help, disabled=disabled)
    note = precision_note(st.session_state[_w("precision")], resolve_device("auto"))
    if note:
        sb.caption(f":warning: {escape_markdown(note)}")
    settings = current_settings()
    mirror_to_url(settings)
    return settings


def link_warnings(settings: dict) -> None:
    """Warnings about ignored query parameters, shown until the settings are changed."""
    for w in pending_link_warnings(settings):
        st.warning(escape_markdown(w), icon=":material/link:")
