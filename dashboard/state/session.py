"""The runs of one browser session (pure Python; the page keeps one :class:`SessionRuns` per session)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

from dashboard.state.settings import describe
from vaegmm.core.env import env_float
from vaegmm.model.config import RunConfig
from vaegmm.runs.library import RunRecorder
from vaegmm.runs.runner import SlotManager, TrainingRun

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


class SessionRuns:
    """Every run started in this session (for the Compare page) and which one is current (the main page's).

    At most ``keep`` runs are remembered: the oldest finished ones are forgotten first (their history goes with
    them); active runs are never dropped.
    """

    def __init__(self, keep: int = 12, slots: Optional[SlotManager] = None,
                 factory: Optional[Callable[..., TrainingRun]] = None, store=None):
        self.keep = keep
        self.entries: list[RunEntry] = []
        self.current_id: Optional[int] = None
        self.slots = slots
        self.factory = factory or TrainingRun
        self.store = store  # a vaegmm.store.RunStore: each new run is recorded into the run library
        self.released = False
        self._timer: Optional[threading.Timer] = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Optional[RunEntry]:
        return self.get(self.current_id)

    def get(self, run_id: Optional[int]) -> Optional[RunEntry]:
        for e in self.entries:
            if e.run.id == run_id:
                return e
        return None

    def new_run(self, config: RunConfig, settings: dict) -> RunEntry:
        """A new idle run that becomes current; the previous current one is stopped if still active."""
        old = self.current
        if old is not None:
            old.run.stop("replaced by a new run")
        run = self.factory(config, slots=self.slots)
        label = describe(settings)
        if self.store is not None and getattr(run, "recorder", "absent") is None:
            run.recorder = RunRecorder(self.store, config, "dashboard", label=label, preset=settings.get("preset", ""))
        entry = RunEntry(run, dict(settings), f"#{run.id} " + label)
        self.entries.append(entry)
        self.current_id = run.id
        self._prune()
        return entry

    def reset(self) -> None:
        """Stop the current run (its history stays for Compare) and show a fresh, idle page."""
        cur = self.current
        if cur is not None:
            cur.run.stop("reset")
        self.current_id = None

    def stop_all(self, reason: str = "") -> None:
        for e in self.entries:
            e.run.stop(reason)

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
                           and e.run.id != self.current_id), None)
            if victim is None:
                return
            self.entries.remove(victim)
