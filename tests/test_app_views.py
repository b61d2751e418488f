"""AppTest of the 2-D view selector (PCA, LDA, t-SNE), its fallbacks, the Replay and the export buttons, on the
live page and in the Latent explorer (issue 11)."""
from __future__ import annotations

import numpy as np

from test_app import EXPLORER, TINY, _own_slots, app, by_meta, finish, plotly_specs, runs_of  # noqa: F401


RUN = {**TINY, "epochs": "20", "batch": "50"}  # enough training for the GMM to use several classes (LDA)


def main_scatter(at) -> dict:
    return by_meta(plotly_specs(at), "latent")[0]  # the big one comes first; before/after follow


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def test_view_selector_switches_pca_lda_tsne_and_replays():
    at = app(RUN)
    at.button(key="btn_start").click().run()
    run = finish(at)
    assert run.state == "finished"
    assert at.segmented_control(key="view_kind").value == "PCA"
    assert main_scatter(at)["layout"]["xaxis"]["title"]["text"] == "PC 1"
    at.segmented_control(key="view_kind").set_value("LDA").run()
    assert not at.exception
    spec = main_scatter(at)
    assert spec["layout"]["xaxis"]["title"]["text"] == "LD 1" and "LDA" in spec["layout"]["title"]["text"]
    assert "best separate the classes the GMM found" in captions(at)
    pts = [t for t in spec["data"] if t.get("meta") == "points"]
    assert sum(len(t["x"]) for t in pts) == 200
    assert all(np.asarray(t["customdata"]).shape[1] == 3 for t in pts)  # image index for clicks, in every view
    # t-SNE: PCA meanwhile, never waiting; then the embedding appears by itself
    at.segmented_control(key="view_kind").set_value("t-SNE").run()
    assert not at.exception
    assert "computing t-SNE" in captions(at)
    assert main_scatter(at)["layout"]["xaxis"]["title"]["text"] == "PC 1"
    assert run.views.wait_tsne(2, 180), "t-SNE did not finish"
    at.run()
    assert main_scatter(at)["layout"]["xaxis"]["title"]["text"] == "t-SNE 1", captions(at)
    # Replay: one frame per finished iteration in t-SNE (the other iterations' t-SNEs are queued by it)
    at.toggle(key="replay_on").set_value(True).run()
    assert not at.exception
    for i in range(3):
        run.views.wait_tsne(i, 180)
    at.run()
    replay = by_meta(plotly_specs(at), "replay")
    assert len(replay) == 1 and len(replay[0]["frames"]) == 3, captions(at)
    # in PCA: every iteration and every snapshot taken during the VAE updates
    at.segmented_control(key="view_kind").set_value("PCA").run()
    replay = by_meta(plotly_specs(at), "replay")[0]
    assert len(replay["frames"]) == 3 + len(run.snapshots)
    assert len(replay["layout"]["sliders"][0]["steps"]) == len(replay["frames"])
    assert at.button(key="mk_gif").label == "GIF" and at.button(key="mk_png").label == "PNG"
    at.button(key="mk_gif").click().run()  # drawn in a worker process, then offered for download
    assert not at.exception
    job = runs_of(at).current.figure_cache["_files"]["gif"]
    job.result(180)
    at.run()
    gif = [d for d in at.get("download_button") if d.label.startswith("Download GIF")]
    assert len(gif) == 1, [d.label for d in at.get("download_button")]
    assert job.result()[:6] == b"GIF89a"
    at.toggle(key="replay_on").set_value(False).run()
    assert by_meta(plotly_specs(at), "latent") and not by_meta(plotly_specs(at), "replay")


def test_lda_with_two_classes_falls_back_to_pca_with_the_reason():
    at = app({**TINY, "k": "2", "digits": "01"})
    at.button(key="btn_start").click().run()
    finish(at)
    at.segmented_control(key="view_kind").set_value("LDA").run()
    assert not at.exception
    assert "LDA fell back to PCA" in captions(at) and "at least 3 GMM classes" in captions(at)
    assert main_scatter(at)["layout"]["xaxis"]["title"]["text"] == "PC 1"


def test_tsne_with_too_few_points_falls_back_to_pca():
    at = app({**TINY, "n": "60", "k": "4"})
    at.button(key="btn_start").click().run()
    run = finish(at)
    at.segmented_control(key="view_kind").set_value("t-SNE").run()
    run.views.wait_tsne(2, 120)
    at.run()
    assert not at.exception
    assert "t-SNE fell back to PCA" in captions(at) and "perplexity" in captions(at)


def test_explorer_has_the_same_selector():
    at = app(RUN)
    at.button(key="btn_start").click().run()
    finish(at)
    at.switch_page(EXPLORER).run()
    assert not at.exception
    at.segmented_control(key="explore_view").set_value("LDA").run()
    assert not at.exception
    spec = by_meta(plotly_specs(at), "latent")[0]
    assert spec["layout"]["xaxis"]["title"]["text"] == "LD 1"
    assert any(t.get("meta") == "selected" for t in spec["data"])  # the picked point is marked in LDA too
    at.selectbox(key="explore_iteration").set_value(0).run()
    assert "Iteration 0" in by_meta(plotly_specs(at), "latent")[0]["layout"]["title"]["text"]
