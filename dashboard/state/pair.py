"""The side-by-side mode's state (``?pair=feedback``): whether the link asks for it, its settings (read from the
link like the main page's), and this session's pair of runs (:class:`vaegmm.runs.pair.PairRun`), whose two runs
are also entries of the session's :class:`~dashboard.state.session.SessionRuns`, so they appear on the Compare
page, are saved in the run library and follow the session's reconnect grace like every run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import streamlit as st

from dashboard.state.session import RunEntry, SessionRuns
from vaegmm.model.params import config_from_settings, describe, parse_query
from vaegmm.runs.library import RunRecorder
from vaegmm.runs.pair import SIDES, WITH, WITHOUT, PairRun, pair_configs
from vaegmm.sweeps.budget import RunCost, overtime_seconds

PAIR_PARAM = "pair"
PAIR_MODES = ("feedback",)  # ?pair=feedback: with and without the GMM's feedback
_PAIR_KEY = "_vaegmm_pair"


@dataclass
class PairEntry:
    """This session's pair: the two runs' entries (with feedback, without) and the settings that made them."""

    pair: PairRun
    entries: dict  # side -> RunEntry
    settings: dict

    def entry(self, side: str) -> RunEntry:
        return self.entries[side]


def pair_requested() -> bool:
    """Whether the link asks for the side-by-side mode (``?pair=feedback``)."""
    return st.query_params.get(PAIR_PARAM) in PAIR_MODES


def pair_settings() -> tuple[dict, list[str]]:
    """The settings the link gives (``?preset=...&seed=...``; ``pair`` itself is not a setting) and the warnings
    about ignored parameters. ``feedback`` is the one setting the pair overrides (one run each way)."""
    params = {k: v for k, v in st.query_params.to_dict().items() if k != PAIR_PARAM}
    return parse_query(params)


def current_pair() -> Optional[PairEntry]:
    return st.session_state.get(_PAIR_KEY)


def new_pair(runs: SessionRuns, settings: dict, cost: Optional[RunCost] = None) -> PairEntry:
    """Two idle runs of ``settings``, with and without feedback, added to ``runs`` (the previous pair is stopped
    if it is still training; the main page's current run is left alone). With ``cost`` (one run's estimate, issue
    18's budget) each run is stopped by the runner's watchdog past :func:`overtime_seconds` of it, like a run of
    the main page."""
    old = current_pair()
    if old is not None:
        old.pair.stop("replaced by a new pair")
    configs = dict(zip(SIDES, pair_configs(config_from_settings(settings))))
    entries = {}
    for side in SIDES:
        side_settings = dict(settings, feedback=side == WITH)
        run = runs.factory(configs[side], slots=runs.slots, name=side)
        run.slot_owner = runs  # fair share (issue 18): the pair's second run waits behind other sessions' first runs
        if cost is not None and hasattr(run, "time_limit"):
            run.time_limit = overtime_seconds(cost)
            run.time_limit_message = (f"it trained for more than twice its estimate (about {cost.seconds:.0f} s "
                                      f"estimated, stopped after {run.time_limit:.0f} s)")
        label = f"{side} (pair) · " + describe(side_settings)
        if runs.store is not None and getattr(run, "recorder", "absent") is None:
            run.recorder = RunRecorder(runs.store, configs[side], "dashboard", label=label,
                                       preset=settings.get("preset", ""))
        entries[side] = RunEntry(run, side_settings, f"#{run.id} " + label)
        runs.entries.append(entries[side])
    entry = st.session_state[_PAIR_KEY] = PairEntry(PairRun(entries[WITH].run, entries[WITHOUT].run), entries,
                                                    dict(settings))
    return entry
