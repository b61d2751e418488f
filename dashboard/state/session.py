"""The runs of one browser session (pure Python; the page keeps one :class:`SessionRuns` per session).

Start (:meth:`SessionRuns.start`, issue 18) first checks the run's budget (a run estimated above the limit is
refused and never takes a slot), then looks for the same run (:func:`vaegmm.runs.reuse.reuse_key`): one training
now is *joined* (this session follows it, read-only), one finished in the library opens its replay; only
otherwise is a run trained, queued fairly among the sessions (its ``slot_owner`` is this session), watched against
twice its estimate, and registered with the server's follower hub (:mod:`dashboard.follow.hub`), so that its share
link ``?run=<id>`` can be followed live once it has a library id.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from dashboard.follow.hub import FollowHub, follow_hub
from vaegmm.core.env import env_float
from vaegmm.model.config import RunConfig
from vaegmm.model.params import describe
from vaegmm.runs import library
from vaegmm.runs.library import RunRecorder
from vaegmm.runs.reuse import LiveRuns, finished_in_store, live_runs, reuse_enabled, reuse_key
from vaegmm.runs.runner import TrainingRun
from vaegmm.runs.slots import SlotManager
from vaegmm.sweeps.budget import RunCost, overtime_seconds, refusal

GRACE_ENV = "VAEGMM_RECONNECT_GRACE"
DEFAULT_GRACE = 120.0
SESSION_ENDED = "the browser session ended"


def reconnect_grace() -> float:
    """Seconds a disconnected session's runs keep training, waiting for the tab to reconnect
    (``$VAEGMM_RECONNECT_GRACE``, default 120; 0 stops them at once)."""
    return env_float(GRACE_ENV, DEFAULT_GRACE, lo=0.0)


@dataclass
class RunEntry:
    run: TrainingRun
    settings: dict  # the sidebar values that made it
    label: str = ""
    zip_cache: dict = field(default_factory=dict)  # status -> zip bytes (built on the first download)
    figure_cache: dict = field(default_factory=dict)  # (chart, iteration, ...) -> Plotly figure (components.figure_cache)
    live_shown: Optional[tuple] = None  # (figure key, monotonic time) of the live picture last drawn (components.figure_cache)
    joined: bool = False  # following an identical run another session trains (read-only here)
    reused: bool = False  # a finished run of the library, opened instead of training it again
    note: str = ""  # why this run is shown ("Joined an identical run started at 13:05", "trained earlier at ...")


def clock(t: Optional[float]) -> str:
    """``HH:MM`` of a ``time.time()`` in the server's local time ("" for None)."""
    return "" if t is None else time.strftime("%H:%M", time.localtime(t))


class SessionRuns:
    """Every run started in this session (for the Compare page) and which one is current (the main page's).

    At most ``keep`` runs are remembered: the oldest finished ones are forgotten first (their history goes with
    them); active runs are never dropped.
    """

    def __init__(self, keep: int = 12, slots: Optional[SlotManager] = None,
                 factory: Optional[Callable[..., TrainingRun]] = None, store=None, live: Optional[LiveRuns] = None,
                 hub: Optional[FollowHub] = None):
        self.keep = keep
        self.entries: list[RunEntry] = []
        self.current_entry: Optional[RunEntry] = None
        self.slots = slots
        self.factory = factory or TrainingRun
        self.store = store  # a vaegmm.store.RunStore: each new run is recorded into the run library
        self.live = live if live is not None else live_runs()  # the server's runs training now, by reuse key
        self.hub = hub if hub is not None else follow_hub()  # the server's followable runs (share links)
        self.released = False
        self._timer: Optional[threading.Timer] = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Optional[RunEntry]:
        return self.current_entry

    @property
    def current_id(self) -> Optional[int]:
        return None if self.current_entry is None else self.current_entry.run.id

    @current_id.setter
    def current_id(self, run_id: Optional[int]) -> None:
        self.current_entry = self.get(run_id)

    def get(self, run_id: Optional[int]) -> Optional[RunEntry]:
        for e in self.entries:
            if e.run.id == run_id:
                return e
        return None

    def start(self, config: RunConfig, settings: dict, cost: Optional[RunCost] = None,
              limit_s: Optional[float] = None, fresh: bool = False, step: bool = False) -> tuple[Optional[RunEntry], str]:
        """Press Start (or Step with ``step``): ``(None, why)`` when ``cost`` is above ``limit_s`` (nothing is
        queued); else the entry now current: an identical live run joined, an identical finished run of the
        library (unless ``fresh`` or ``step``), or a new run started, stopped by a watchdog past
        :func:`~vaegmm.sweeps.budget.overtime_seconds` of ``cost``."""
        why = refusal(cost, limit_s) if cost is not None else ""
        if why:
            return None, why
        key = reuse_key(config)
        if not fresh and not step and reuse_enabled():
            found = self._join(key, settings) or self._reuse(config, settings)
            if found is not None:
                return found, ""
        entry = self.new_run(config, settings)
        run = entry.run
        run.slot_owner = self
        if cost is not None and hasattr(run, "time_limit"):
            run.time_limit = overtime_seconds(cost)
            run.time_limit_message = (f"it trained for more than twice its estimate (about {cost.seconds:.0f} s "
                                      f"estimated, stopped after {run.time_limit:.0f} s)")
        started = run.step() if step else run.start()
        if started is not False:
            self.live.add(key, run)
            if getattr(run, "recorder", None) is not None:  # it gets a library id, its share link's ?run=
                self.hub.register(run)
        return entry, ""

    def _join(self, key: str, settings: dict) -> Optional[RunEntry]:
        live = self.live.find(key)
        if live is None:
            return None
        self._let_go(self.current, "replaced by a new run")
        self.live.follow(live, self)
        entry = RunEntry(live.run, dict(settings), f"#{live.run.id} " + describe(settings), joined=True,
                         note=f"Joined an identical run started at {clock(live.started)}: the same settings and "
                              "seed are training now for another page, so this page follows it (read-only) "
                              "instead of training it twice.")
        self._add(entry)
        return entry

    def _reuse(self, config: RunConfig, settings: dict) -> Optional[RunEntry]:
        if self.store is None:
            return None
        try:
            row = finished_in_store(self.store, config)
            saved = library.load_run(self.store, row["id"]) if row is not None else None
        except Exception:  # a store problem: train it instead
            return None
        if saved is None or not saved.history or saved.labels is None:
            return None  # its arrays are gone (size cap) or it was a CLI run: nothing to replay
        self._let_go(self.current, "replaced by a new run")
        when = clock(row.get("finished") or row.get("created"))
        entry = RunEntry(saved, dict(settings), f"saved #{saved.id} " + describe(settings), reused=True,
                         note=f"This run was trained earlier at {when} (saved run #{saved.id}, the same settings "
                              "and seed): its replay is shown instead of training it again.")
        self._add(entry)
        return entry

    def _add(self, entry: RunEntry) -> None:
        self.entries.append(entry)
        self.current_entry = entry
        self._prune()

    def watched_by_others(self, run) -> bool:
        """Whether another connected session follows ``run`` (then this session's Reset or leaving does not
        stop it)."""
        return any(f is not self and not f.released for f in self.live.followers_of(run))

    def _let_go(self, entry: Optional[RunEntry], reason: str) -> None:
        """Stop ``entry``'s run unless this session only follows it or others follow it."""
        if entry is not None and entry.joined:
            self.live.unfollow(entry.run, self)
        if entry is None or entry.joined or self.watched_by_others(entry.run):
            return
        entry.run.stop(reason)

    def new_run(self, config: RunConfig, settings: dict) -> RunEntry:
        """A new idle run that becomes current; the previous current one is stopped if still active."""
        self._let_go(self.current, "replaced by a new run")
        run = self.factory(config, slots=self.slots)
        label = describe(settings)
        if self.store is not None and getattr(run, "recorder", "absent") is None:
            run.recorder = RunRecorder(self.store, config, "dashboard", label=label, preset=settings.get("preset", ""))
        entry = RunEntry(run, dict(settings), f"#{run.id} " + label)
        self._add(entry)
        return entry

    def reset(self) -> None:
        """Stop the current run (its history stays for Compare; a joined run, or one others follow, goes on) and
        show a fresh, idle page."""
        self._let_go(self.current, "reset")
        self.current_entry = None

    def stop_all(self, reason: str = "") -> None:
        for e in self.entries:
            self._let_go(e, reason)

    def release(self, grace: float = 0.0) -> None:
        """The browser session disconnected. With ``grace`` > 0 the runs go on for that many seconds, so a tab
        that reconnects (a network blip: Streamlit reconnects by itself) finds them still live; after that, or at
        once without grace, every run is stopped, so no run outlives its tab."""
        with self._lock:
            self.released = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if grace > 0:
                self._timer = threading.Timer(grace, self._expire)
                self._timer.daemon = True
                self._timer.name = "vaegmm-reconnect-grace"
                self._timer.start()
                return
        self.stop_all(SESSION_ENDED)

    def reattach(self) -> None:
        """The session runs a script again (the tab is back): cancel a pending :meth:`release`."""
        with self._lock:
            self.released = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _expire(self) -> None:
        with self._lock:
            if not self.released:
                return
            self._timer = None
        self.stop_all(SESSION_ENDED)

    def with_history(self) -> list[RunEntry]:
        return [e for e in self.entries if e.run.history]

    def _prune(self) -> None:
        while len(self.entries) > self.keep:
            victim = next((e for e in self.entries if not e.run.snapshot().is_active
                           and e is not self.current_entry), None)
            if victim is None:
                return
            self.entries.remove(victim)
