"""The sidebar's data source (issue 25): MNIST (bundled), a Serket tutorial folder (``serket:<folder>``) or the
user's own images, uploaded (``upload:<id>``).

The source is one of the settings (``params.FIELDS["source"]``): the sidebar keeps it in ``cfg_source`` as it keeps
the others, so the link, the run's settings and its label carry it. A folder or an upload is read and checked
when it is given (callbacks, before the widgets are drawn): a good one becomes the source and sets the number of
images and the digits; a bad one gets a one-line error, nothing is kept and the source stays as it was.
"""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.components.markup import escape_markdown
from dashboard.state.link import widget_key
from vaegmm.model.data import (SERKET_PREFIX, UPLOAD_PREFIX, DataSourceError, load_serket, save_upload,
                               training_subset_for)
from vaegmm.model.image_files import IMAGE_SUFFIXES, LABEL_SUFFIXES, read_upload

KINDS = {"mnist": "MNIST", "serket": "Serket folder", "upload": "Your images"}
_MESSAGE = "_source_message"  # ("error" | "ok", one line) about the last folder or upload given


def _kind_of(source: str) -> str:
    if source.startswith(SERKET_PREFIX):
        return "serket"
    if source.startswith(UPLOAD_PREFIX):
        return "upload"
    return "mnist"


def _use(source: str, n: int, digits: tuple, what: str) -> None:
    """Make ``source`` the run's data, with ``n`` training images over ``digits``; say so in one line."""
    ss = st.session_state
    ss[widget_key("source")] = source
    ss[widget_key("n")] = max(10, int(n))
    ss[widget_key("digits")] = list(digits)
    ss[widget_key("k")] = max(1, len(digits))
    ss[_MESSAGE] = ("ok", what)


def _kind_changed() -> None:
    ss = st.session_state
    ss.pop(_MESSAGE, None)
    if ss["data_kind"] == "mnist":
        ss[widget_key("source")] = "auto"


def _folder_given() -> None:
    """A Serket folder typed in: the tutorial's images, all of them, in their order (as its script uses them)."""
    ss = st.session_state
    folder = (ss.get("serket_folder") or "").strip()
    if not folder:
        return
    try:
        images, labels = load_serket(folder)
    except (DataSourceError, ValueError) as e:
        ss[_MESSAGE] = ("error", str(e))
        return
    digits = tuple(sorted({int(d) for d in labels}))
    _use(SERKET_PREFIX + folder, len(images), digits,
         f"{len(images)} images of the digits {''.join(map(str, digits))} from the Serket folder, all trained on")


def _upload_given() -> None:
    """Images (and labels) uploaded: checked; a good set is kept (``save_upload``) and becomes the source."""
    ss = st.session_state
    images, labels = ss.get("upload_images"), ss.get("upload_labels")
    if images is None:
        ss.pop(_MESSAGE, None)
        return
    try:
        x, y = read_upload((images.getvalue(), images.name),
                           None if labels is None else (labels.getvalue(), labels.name))
        source = save_upload(x, y)
    except ValueError as e:  # nothing was kept: the source stays as it was
        ss[_MESSAGE] = ("error", str(e))
        return
    n, digits = training_subset_for(y, len(x))
    kept = (f"labelled, digits {''.join(map(str, digits))}" if y is not None
            else "no labels: accuracy cannot be measured, the views colour by GMM class")
    _use(source, n, digits if y is not None else tuple(range(10)),
         f"{len(x)} images ({kept}): {n} trained on, the rest held out")


def data_source(disabled: bool = False) -> None:
    """The sidebar's data source: a choice of MNIST, a Serket folder or an upload, and a line on what is used."""
    ss = st.session_state
    sb = st.sidebar
    source = str(ss.get(widget_key("source"), "auto"))
    if "data_kind" not in ss:
        ss["data_kind"] = _kind_of(source)
        if source.startswith(SERKET_PREFIX):
            ss["serket_folder"] = source[len(SERKET_PREFIX):]
    kind = sb.radio("Images", list(KINDS), format_func=KINDS.get, key="data_kind", horizontal=True,
                    on_change=_kind_changed, disabled=disabled,
                    help="MNIST: real handwritten digits (500 per digit come with the app). Serket folder: the "
                         "tutorial's own data.txt and category.txt. Your images: a file of N x 784 values in "
                         "[0, 1] or 0-255, with labels or without.")
    if kind == "serket":
        sb.text_input("Serket folder", key="serket_folder", on_change=_folder_given, disabled=disabled,
                      placeholder="/path/to/serket/examples/VAE+GMM/mnist",
                      help="A folder on the server holding data.txt (N x 784) and category.txt (N labels).")
    elif kind == "upload":
        sb.file_uploader("Images (N x 784)", type=[s.lstrip(".") for s in IMAGE_SUFFIXES], key="upload_images",
                         on_change=_upload_given, disabled=disabled,
                         help=".npy (N x 784 or N x 28 x 28), .npz (images, optional labels), .csv or .txt (one "
                              "image per row; 785 columns: the label first).")
        sb.file_uploader("Labels (optional)", type=[s.lstrip(".") for s in LABEL_SUFFIXES], key="upload_labels",
                         on_change=_upload_given, disabled=disabled, help="N digits 0-9, one per image.")
    message: Optional[tuple] = ss.get(_MESSAGE)
    if message is not None and message[0] == "error":
        sb.error(escape_markdown(message[1]), icon=":material/error:")
    if kind != "mnist" and _kind_of(source) == "mnist":
        sb.caption("Until a good folder or file is given, runs use MNIST.")
    elif kind != "mnist":
        what = message[1] if message is not None and message[0] == "ok" else "from the link"
        sb.caption(f"Using {escape_markdown(_short(source))}: {escape_markdown(what)}.")


def _short(source: str) -> str:
    """A source string short enough for the sidebar (a long folder path keeps its end)."""
    return source if len(source) <= 48 else source[:len(SERKET_PREFIX)] + "…" + source[-40:]
