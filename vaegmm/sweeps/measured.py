"""The measured effect of feedback, as the pages quote it (issue 12).

``measured_feedback.json`` beside this module holds the per-seed final metrics of a stored sweep (written by
``python bench/quality.py ... --export-effect vaegmm/sweeps/measured_feedback.json``): feedback on and off, paired over the
same held-out seeds. The comparison (mean difference, its 95 % CI, the paired tests) is computed here from those
numbers with :mod:`vaegmm.sweeps.stats`, so no page types a number into its text.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vaegmm.sweeps.stats import Paired, Summary, paired, summarize

MEASURED_FILE = Path(__file__).with_name("measured_feedback.json")


@dataclass(frozen=True)
class FeedbackEffect:
    """Feedback on vs off over the same seeds: ``comparison`` (on - off, final accuracy), each side's summary,
    and where the numbers come from."""

    comparison: Paired
    on: Summary
    off: Summary
    seeds: tuple
    sweep: str
    setting: str
    made: str
    note: str
    curves_on: tuple  # (seeds, iterations+1) accuracy per iteration
    curves_off: tuple

    def sentence(self) -> str:
        """E.g. "Feedback on beats feedback off by 0.5 points of accuracy (95 % CI ..., p = ..., 10 seeds)." """
        return self.comparison.sentence()

    def source(self) -> str:
        seeds = ", ".join(map(str, self.seeds))
        setting = self.setting.replace(", feedback=True", "")  # the two sides differ only in it
        return (f"Measured by the sweep '{self.sweep}' ({self.made}; {setting}; seeds {seeds}"
                + (f"; {self.note}" if self.note else "") + "). Final accuracy: feedback on "
                f"{self.on.mean:.3f} (95 % CI {self.on.ci_low:.3f}-{self.on.ci_high:.3f}), off {self.off.mean:.3f} "
                f"(95 % CI {self.off.ci_low:.3f}-{self.off.ci_high:.3f}).")


def feedback_effect(path: Optional[Path] = None) -> Optional[FeedbackEffect]:
    """The stored comparison, or None when the file is missing or unreadable (the pages then say nothing)."""
    p = Path(path) if path is not None else MEASURED_FILE
    try:
        data = json.loads(p.read_text())
        on, off = data["final"][data["on"]]["accuracy"], data["final"][data["off"]]["accuracy"]
        seeds = tuple(data["seeds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    comparison = paired(on, off, "Feedback on", "feedback off", seeds=seeds)
    return FeedbackEffect(comparison, summarize(on), summarize(off), seeds, str(data.get("sweep", "")),
                          str(data.get("setting", "")), str(data.get("made", "")), str(data.get("note", "")),
                          tuple(map(tuple, data.get("curves", {}).get(data["on"], []))),
                          tuple(map(tuple, data.get("curves", {}).get(data["off"], []))))
