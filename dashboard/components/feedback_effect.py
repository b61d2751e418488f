"""The measured effect of feedback, quoted on the Compare and How it works pages."""
from __future__ import annotations

import streamlit as st

from vaegmm.sweeps.measured import feedback_effect


def measured_feedback_effect() -> None:
    """The measured size of the lesson (feedback on vs off, paired over held-out seeds), computed from the stored
    sweep's per-seed numbers (:mod:`vaegmm.sweeps.measured`); nothing when they are missing."""
    effect = feedback_effect()
    if effect is None:
        return
    st.info(f"**How big is the effect of feedback?** {effect.sentence()}  \n{effect.source()}",
            icon=":material/science:")
