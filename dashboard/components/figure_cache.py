"""Plotly figures cached per run (building a 3000-point figure costs ~60 ms, and the live fragment draws at
every refresh), and the pace of the big live scatter."""
from __future__ import annotations

import time

from dashboard import charts
from dashboard.state.session import RunEntry


def cached_figure(entry: RunEntry, key: tuple, build):
    """A Plotly figure built once per run and ``key`` (``key[0]`` names the kind of chart; building a
    3000-point figure costs ~60 ms, and the live fragment draws it at every refresh)."""
    cache = entry.figure_cache.setdefault(key[0], {})  # per kind of chart: a live loss chart cannot evict a scatter
    fig = cache.get(key)
    if fig is None:
        fig = cache[key] = build()
        while len(cache) > 6:
            cache.pop(next(iter(cache)))
    return fig


LIVE_PICTURE_EVERY = 1.5  # s: the shortest time between two new live pictures of a WebGL-sized scatter


def live_picture_key(entry: RunEntry, key: tuple, points: int) -> tuple:
    """The figure key of the live picture to draw: ``key`` (a newer snapshot), or for a scatter of more than
    ``charts.WEBGL_FROM`` points the one drawn last, until ``LIVE_PICTURE_EVERY`` seconds have passed (same
    iteration, view and colouring). Redrawing a 3000-point scatter costs a browser without a GPU about half a second
    of its main thread (Chromium headless, software rendering: the page's main thread went from 47 % to 99 % busy
    with a new picture at every snapshot), which delayed the status line's own refreshes past a second; an
    unchanged figure is not redrawn."""
    prev = entry.live_shown
    now = time.monotonic()
    if (points > charts.WEBGL_FROM and prev is not None and prev[0] != key and prev[0][:2] == key[:2]
            and prev[0][3:] == key[3:] and now - prev[1] < LIVE_PICTURE_EVERY
            and prev[0] in entry.figure_cache.get("live", {})):
        return prev[0]
    if prev is None or prev[0] != key:
        entry.live_shown = (key, now)
    return key

