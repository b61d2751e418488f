"""The side-by-side mode (``?pair=feedback``, issue 19) driven by streamlit.testing.v1.AppTest: the preset from the
link, both halves, Start both, the two finished runs, their shared axes and the gap on the accuracy chart."""
from __future__ import annotations

import pytest

from dashboard.components.pair_view import shared_ranges
from markdown_text import shown
from test_app import APP, by_meta, plotly_specs, runs_of  # noqa: F401 (the shared AppTest helpers)
from test_app import app as pair_app  # the page of a link, run once, no exception
from vaegmm.runs import runner
from vaegmm.runs.pair import WITH, WITHOUT

# the feedback-lesson preset, tiny: 200 images, 3 epochs x 3 iterations
TINY_PAIR = {"preset": "feedback-lesson", "pair": "feedback", "n": "200", "epochs": "3", "iterations": "3",
             "batch": "50"}


@pytest.fixture(autouse=True)
def _own_slots(monkeypatch):
    """A fresh server-wide cap per test (2 slots: the pair trains at once)."""
    monkeypatch.setenv("VAEGMM_MAX_RUNS", "2")
    runner.default_slots.reset()
    runner.warm_up(background=False)
    yield
    runner.default_slots.reset()


def sides(at) -> list[str]:
    return [m.value for m in at.markdown if 'data-testid="vaegmm-pair-side"' in m.value]


def statuses(at) -> list[str]:
    return [m.value for m in at.markdown if 'data-testid="vaegmm-status"' in m.value]


def test_pair_link_opens_side_by_side_with_the_preset_applied():
    at = pair_app({"preset": "feedback-lesson", "pair": "feedback"})
    assert sorted(t.value for t in at.title) == ["Feedback side by side: with and without the GMM's class means", "VAE + GMM"]
    sidebar = " ".join(shown(m.value) for m in at.sidebar.markdown)
    assert "Feedback lesson" in sidebar
    assert "n=2000" in sidebar and "D=12" in sidebar and "alpha=8" in sidebar and "20x10 ep" in sidebar
    both = sides(at)
    assert len(both) == 2 and 'data-side="with feedback"' in both[0] and 'data-side="without feedback"' in both[1]
    start = at.button(key="pair_start")
    assert start.label == "Start both" and not start.disabled and at.button(key="pair_stop").disabled
    assert not at.warning  # "pair" is not reported as an unknown setting
    assert "btn_start" not in [b.key for b in at.button]  # the normal page is not drawn below


def test_pair_link_with_bad_values_warns_and_escapes():
    at = pair_app({"preset": "feedback-lesson", "pair": "feedback", "alpha": "**x**"})
    assert len(at.warning) == 1 and "alpha='**x**'" in shown(at.warning[0].value)
    assert "\\*\\*x\\*\\*" in at.warning[0].value  # escaped: shown as typed, not bold


def test_without_pair_the_normal_page_is_drawn():
    at = pair_app({"preset": "feedback-lesson", "pair": "nonsense"})
    assert "btn_start" in [b.key for b in at.button] and not sides(at)


def test_start_both_trains_the_pair_and_labels_the_gap():
    at = pair_app(TINY_PAIR)
    at.button(key="pair_start").click().run()
    assert not at.exception, at.exception
    entry = at.session_state["_vaegmm_pair"]
    with_run, without_run = entry.pair.with_run, entry.pair.without_run
    assert with_run.config.feedback is True and without_run.config.feedback is False
    assert with_run.config.replace(feedback=False).to_dict() == without_run.config.to_dict()
    assert with_run.config.vae.latent_dim == 12 and with_run.config.vae.alpha == 8.0 and with_run.config.data.n == 200
    assert {e.run.id for e in runs_of(at).entries} >= {with_run.id, without_run.id}  # on the Compare page too
    assert runs_of(at).current is None  # the main page's current run is left alone
    assert with_run.join(90) and without_run.join(90)
    at.run()
    assert not at.exception, at.exception
    assert [s.count('data-state="finished"') for s in statuses(at)] == [1, 1]
    specs = plotly_specs(at)
    latent = by_meta(specs, "latent")
    assert len(latent) == 2
    for spec in latent:
        assert sum(len(t["x"]) for t in spec["data"] if t.get("meta") == "points") == 200
    # the same axes on both sides
    assert latent[0]["layout"]["xaxis"]["range"] == latent[1]["layout"]["xaxis"]["range"]
    assert latent[0]["layout"]["yaxis"]["range"] == latent[1]["layout"]["yaxis"]["range"]
    acc = by_meta(specs, "pair_accuracy")
    assert len(acc) == 1
    curves = {t["name"]: t["y"] for t in acc[0]["data"] if t.get("meta") == "curve"}
    assert list(curves) == [WITH, WITHOUT] and all(len(y) == 4 for y in curves.values())
    assert curves[WITH][:2] == curves[WITHOUT][:2]  # iterations 0 and 1: the same numbers (no feedback yet)
    gap = entry.pair.gap()
    assert gap.iteration == 3 and gap.points == pytest.approx(100 * (curves[WITH][3] - curves[WITHOUT][3]))
    assert acc[0]["layout"]["annotations"][0]["text"] == gap.label()
    assert [m for m in at.markdown if f'data-gap="{gap.points:.2f}"' in m.value]


def test_shared_ranges_cover_both_pictures():
    assert shared_ranges([None, None]) is None
    assert shared_ranges([((0, 1), (-1, 2)), None, ((-2, 0.5), (0, 3))]) == ((-2.0, 1.0), (-1.0, 3.0))


def test_pair_page_quotes_the_presets_held_out_effect(tmp_path, monkeypatch):
    from markdown_text import shown as text_of
    from vaegmm.sweeps import feedback_map
    from vaegmm.sweeps.feedback_map import MapRow, write_feedback_map

    row = MapRow(4, 3.0, 25, 20, list(range(100, 110)), 10, 0.052, 0.021, 0.083, 0.004, 9, source="held-out (h)",
                 name="feedback-lesson")
    monkeypatch.setattr(feedback_map, "MAP_FILE", write_feedback_map(tmp_path / "m.json", [], [row]))
    at = pair_app({"preset": "feedback-lesson", "pair": "feedback"})
    said = [text_of(m.value) for m in at.markdown if "held-out seeds" in text_of(m.value)]
    assert said == ["Measured on held-out seeds (10 seeds, held-out (h)): feedback +5.2 points of final accuracy, "
                    "95 % CI 2.1 to 8.3, paired t-test p = 0.004, better on 9 of 10 seeds. One seed, as here, can "
                    "land anywhere in that range."]
    monkeypatch.setattr(feedback_map, "MAP_FILE", tmp_path / "none.json")
    at = pair_app({"preset": "feedback-lesson", "pair": "feedback"})
    assert not [m for m in at.markdown if "held-out seeds" in m.value]


def test_a_runaway_pair_link_is_refused_and_takes_no_slot():
    """Issue 18's budget holds on the side-by-side page too: two runs of a link above $VAEGMM_MAX_RUN_MINUTES
    never start, whatever the link says."""
    at = pair_app({"preset": "quick-demo", "pair": "feedback", "n": "5000", "epochs": "1000", "iterations": "50",
                   "batch": "1"})
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "too big for this server" in errors[0] and "VAEGMM_MAX_RUN_MINUTES" in errors[0]
    start = at.button(key="pair_start")
    assert start.disabled
    assert runner.default_slots().running == 0 and runner.default_slots().waiting == 0
    assert not statuses(at) or all("running" not in shown(s) for s in statuses(at))
