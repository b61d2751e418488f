"""The follower's live view of a run (issue 18 part 1): one Streamlit component (``st.components.v2``, its markup,
style and script in ``view.html``, ``view.css`` and ``view.js`` beside this file) that reads the run's frames from
the server's push channel (the WebSocket ``/_vaegmm/runs/<id>/socket``, :mod:`dashboard.follow.routes`) and
redraws the status line, the progress bar, the latent picture (a ``<canvas>`` as wide as the page) and the
accuracy chart on each frame.

Drawn once per page; no script runs while the run trains. When the run has ended, the component's ``ended``
trigger reruns the page once, as a widget does, and the page is then the saved run's. (The page used to poll a
fragment every 5 s that called ``st.rerun()`` at the end and so swapped the page's one fragment for another within
the session: the only place left with the pattern issue 8 found behind its white pages, "Cannot set a node at a
delta path".)"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.follow.routes import socket_url
from vaegmm.views.scatter import DIGIT_COLOURS

HERE = Path(__file__).resolve().parent
_COMPONENT = st.components.v2.component(
    "vaegmm_follow", html=(HERE / "view.html").read_text(encoding="utf-8"),
    css=(HERE / "view.css").read_text(encoding="utf-8"), js=(HERE / "view.js").read_text(encoding="utf-8"))


def follow_view(run_id: int, state_colours: dict) -> None:
    """The live view of run ``run_id`` (an int: nothing a user typed goes into it); ``state_colours``: the status
    badge's colour per state, as on the owner's page."""
    _COMPONENT(key=f"follow_{int(run_id)}", data={"socket": socket_url(int(run_id)), "colours": list(DIGIT_COLOURS),
                                                  "stateColours": dict(state_colours)},
               on_ended_change=lambda: None)
