"""The follower's live view of a run (issue 18 part 1): one HTML/JS element (``st.iframe`` of
``dashboard/assets/follow_run.html``) that reads the run's frames from the server's push channel
(the WebSocket ``/_vaegmm/runs/<id>/socket``, :mod:`dashboard.state.follow_route`) and redraws the status line, the progress bar,
the latent picture (a ``<canvas>`` as wide as the page) and the accuracy chart on each frame. Drawn once per page:
no script reruns while the run trains."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import streamlit as st

from dashboard.components.status import STATE_COLOURS
from dashboard.state.follow_route import socket_url
from vaegmm.views.scatter import DIGIT_COLOURS

ASSET = Path(__file__).resolve().parents[1] / "assets" / "follow_run.html"


@lru_cache(maxsize=1)
def _template() -> str:
    return ASSET.read_text(encoding="utf-8")


def follow_html(run_id: int) -> str:
    """The element's HTML for run ``run_id`` (the id is an int: nothing a user typed goes into it)."""
    return (_template().replace("__SOCKET_URL__", json.dumps(socket_url(int(run_id))))
            .replace("__COLOURS__", json.dumps(list(DIGIT_COLOURS)))
            .replace("__STATE_COLOURS__", json.dumps(STATE_COLOURS)))


def follow_view(run_id: int) -> None:
    """The live view of run ``run_id``, as tall as its content."""
    st.iframe(follow_html(run_id), height="content")
