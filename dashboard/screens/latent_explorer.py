"""The Latent explorer page: pick a point to see its image, its reconstruction and its class mean decoded; the
decoded class means; the confusion matrix. A saved run opens with ``?run=<id>``."""
from __future__ import annotations

from typing import Optional

import numpy as np
import streamlit as st

from dashboard import charts
from dashboard.components import view_fallback
from dashboard.components.digit_image import digit_image
from dashboard.components.figure_cache import cached_figure
from dashboard.components.run_picker import pick_run
from dashboard.components.view_selector import COLOUR_BY, view_selector
from dashboard.state.refresh import live_every
from dashboard.state.saved_runs import load_saved, requested_run, saved_entries, saved_entry
from dashboard.state.session import RunEntry, SessionRuns
from dashboard.components.markup import escape_markdown
from vaegmm.model.metrics import best_matching
from vaegmm.model.vae import decode_numpy


def _big(img: np.ndarray, scale: int = 5) -> np.ndarray:
    """(784,) in [0, 1] -> (28*scale, 28*scale), nearest-neighbour, so a small digit stays crisp."""
    return np.kron(np.asarray(img, dtype=np.float32).reshape(28, 28), np.ones((scale, scale), dtype=np.float32))


def _pick_iteration(container, history, planned: int, key: str) -> object:
    """The iteration to explore: "latest" (the default: it follows a run that is still training) or a number.
    The options are every planned iteration, fixed, so the choice survives while more iterations finish."""
    done = {r.iteration: r for r in history}
    pick = container.selectbox("Iteration", ["latest"] + list(range(planned + 1)), key=key,
                               format_func=lambda o: "latest iteration" if o == "latest" else
                               f"iteration {o}" + ("" if o in done else " (not yet)"))
    return done.get(pick, history[-1])


def _selected_index(key: str) -> Optional[int]:
    """The image index of a point clicked on the scatter (``customdata[0]``), once per new click."""
    event = st.session_state.get(key)
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    if not points:
        return None
    stamp = tuple(sorted((p.get("curve_number"), p.get("point_index")) for p in points))
    if st.session_state.get("_explore_last_click") == stamp:
        return None
    st.session_state["_explore_last_click"] = stamp
    cd = points[0].get("customdata")
    if isinstance(cd, dict):  # a row of a binary (typed) array reaches the server as {"0": index, "1": ...}
        cd = [cd[k] for k in sorted(cd, key=int)] if all(str(k).isdigit() for k in cd) else None
    if isinstance(cd, (list, tuple)) and cd:
        return int(cd[0])
    return None


def explorer_page(runs: SessionRuns) -> None:
    """The Latent explorer's body: one fragment, refreshed every 2 s or slower (``live_every()``), so a run
    that is still training shows its new iterations by itself."""
    saved_id = requested_run()

    @st.fragment(run_every=max(2.0, live_every()))  # constant for the session: see dashboard/screens/live_run.py
    def body():
        if saved_id is not None:  # ?run=<id>: a saved run, read-only
            run, problem = load_saved(saved_id)
            if run is None:
                st.error(escape_markdown(problem), icon=":material/error:")
                return
            if not run.history or run.labels is None:
                st.warning(f"Saved run #{saved_id} has no latent codes on disk (its folder was cleaned up to keep "
                           "the library under its size cap, or it ended before iteration 0); its metrics are on "
                           "the Compare page.", icon=":material/info:")
                return
            entry = saved_entries().setdefault((saved_id, run.status, len(run.history)), saved_entry(run))
            st.caption(f"Saved run #{saved_id} ({run.status}), read-only.")
        else:
            entry = pick_run(runs)
        if entry is not None:
            explorer(entry)

    body()


def explorer(entry: RunEntry) -> None:
    run = entry.run
    snap = run.snapshot()
    history = snap.history
    labels, images = run.labels, run.images_u8
    c1, c2, c3 = st.columns([1, 1.15, 1])
    result = _pick_iteration(c3, history, run.config.iterations, "explore_iteration")
    colour = c1.segmented_control("Colour by", COLOUR_BY, default="digit", key="explore_colour",
                                  required=True) or "digit"
    kind = view_selector(c2, "explore_view")
    if snap.is_active:
        st.caption(f":material/autorenew: Run #{run.id} is still training ({snap.iterations_done} of "
                   f"{run.config.iterations} iterations done): this page shows each new iteration by itself.")
    n = len(labels)
    clicked = _selected_index("explore_scatter")
    if clicked is not None and 0 <= clicked < n:
        st.session_state["explore_idx"] = clicked
    if st.session_state.get("explore_idx", 0) >= n:
        st.session_state["explore_idx"] = 0
    idx = int(st.session_state.get("explore_idx", 0))

    left, right = st.columns([3, 2])
    with left:
        by = "class" if colour == "GMM class" else "digit"
        shown = view_fallback.iteration_view(run, history, result.iteration, kind)
        view_fallback.explain(shown)
        view = shown.view
        ranges = run.views.ranges(view.kind, view.xy)
        title = f"Iteration {result.iteration} ({view_fallback.LABELS[view.kind]}): click a point"
        fig = cached_figure(entry, ("explore", result.iteration, by, idx, view.kind, ranges),
                            lambda: charts.latent_scatter(
                                result, labels, by, title=title, selected=idx, height=480, view=view, ranges=ranges,
                                uirevision=f"explore{run.id}-{view.kind}"))
        st.plotly_chart(fig, key="explore_scatter", on_select="rerun", selection_mode="points",
                        config={"displaylogo": False})
    with right:
        st.number_input("Image index", 0, n - 1, step=1, key="explore_idx",
                        help="Or click a point on the scatter.")
        digit, cls = int(labels[idx]), int(result.classes[idx])
        match = best_matching(result.classes, labels)
        st.markdown(f"**Image {idx}** · digit **{digit}** · GMM class **{cls}**"
                    + (f" (class {cls} is matched to digit {match[cls]})" if cls in match else ""))
        recon = decode_numpy(result.decoder_state, result.encoder_mean[idx:idx + 1])[0]
        mean_img = decode_numpy(result.decoder_state, result.class_means[cls:cls + 1])[0]
        c1, c2, c3 = st.columns(3)
        if images is not None:
            digit_image(c1, _big(images[idx] / 255.0), "the image")
        digit_image(c2, _big(recon), "its reconstruction")
        digit_image(c3, _big(mean_img), f"decoded mean of class {cls}")
        st.caption("Reconstruction: the decoder of this iteration applied to the encoder's mean code of the image. "
                   "Early on it is a grey blur; after a few iterations it looks like the digit.")

    st.subheader(f"Decoded GMM class means, iteration {result.iteration}")
    st.caption("The decoder applied to each class mean: what the model thinks a typical member of each class looks "
               "like. Watch digits emerge from blur as the iterations go on.")
    k = len(result.class_means)
    means_img = decode_numpy(result.decoder_state, result.class_means)
    match = best_matching(result.classes, labels)
    per_row = 10
    for start in range(0, k, per_row):
        cols = st.columns(per_row)
        for j, c in enumerate(range(start, min(k, start + per_row))):
            count = int(result.class_counts[c])
            tag = f" ↔ digit {match[c]}" if c in match and count else ""
            digit_image(cols[j], _big(means_img[c], 3), f"class {c} ({count}){tag}")

    st.subheader("Confusion matrix: GMM classes against digits")
    st.caption("Rows are GMM classes (ordered by the digit they are matched to), columns the true digits. A good "
               "clustering has one large number per row and column.")
    st.plotly_chart(cached_figure(entry, ("confusion", result.iteration), lambda: charts.confusion_chart(
        result.classes, labels, k)), key="explore_confusion", config={"displaylogo": False})
