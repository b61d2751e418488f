"""AppTest of issue 18's budget and reuse on the live page: a runaway link is refused with a clear message and
takes no slot; Start with the settings of a run finished earlier opens its replay, labelled "trained earlier at",
with a "Train it anew" button that trains it."""
from __future__ import annotations

import time

import pytest

from dashboard.state import budget as page_budget
from vaegmm.model.params import config_from_settings, parse_query
from markdown_text import shown
from test_app import app  # the page of a link, run once, no exception
from vaegmm.runs import runner
from vaegmm.runs.library import SavedRun

TINY = {"n": "200", "latent": "4", "epochs": "2", "iterations": "2", "batch": "100", "codes": "mean", "seed": "7"}
RUNAWAY = {"preset": "quick-demo", "n": "5000", "epochs": "1000", "iterations": "50", "batch": "1"}


@pytest.fixture(autouse=True)
def _own_slots(monkeypatch):
    monkeypatch.setenv("VAEGMM_MAX_RUNS", "2")
    monkeypatch.setenv("VAEGMM_REUSE", "on")
    monkeypatch.delenv("VAEGMM_MAX_RUN_MINUTES", raising=False)
    runner.default_slots.reset()
    page_budget.forget_rate()
    runner.warm_up(background=False)
    yield
    runner.default_slots.reset()




def runs_of(at):
    return at.session_state["_vaegmm_runs"]


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def test_a_runaway_link_is_refused_and_takes_no_slot():
    at = app(RUNAWAY)
    err = shown(texts(at.error))
    assert "This run is too big for this server" in err and "10 min per run" in err, err
    assert "$VAEGMM_MAX_RUN_MINUTES" in err
    assert at.button(key="btn_start").disabled and at.button(key="btn_step").disabled
    # Start's callback goes through SessionRuns.start, which refuses it again (a click racing the page)
    settings, ignored = parse_query(RUNAWAY)
    assert ignored == [] and settings["n"] == 5000 and settings["batch"] == 1  # the link is taken as it is
    config = config_from_settings(settings)
    entry, why = runs_of(at).start(config, settings, cost=page_budget.cost_of(config, None),
                                   limit_s=page_budget.dashboard_limit_s())
    assert entry is None and why.startswith("This run is too big for this server")
    slots = runner.default_slots()
    assert runs_of(at).current is None and runs_of(at).entries == []
    assert slots.running == 0 and slots.waiting == 0


def test_the_cost_is_shown_before_start():
    at = app(TINY)
    cost = texts(at.caption)
    # 200 images x 2 epochs x 2 iterations = 800 VAE image-steps; EM: 200 x 10 restarts x 3 fits = 6 k
    assert "Estimated cost: 800 VAE image-steps + 6000 GMM point-updates" in cost, cost
    assert "limit 10 min per run" in cost
    assert not at.error


def test_a_finished_run_opens_its_replay_with_train_it_anew():
    first = app(TINY)
    first.button(key="btn_start").click().run()
    run = runs_of(first).current.run
    assert isinstance(run, runner.TrainingRun) and run.join(90) and run.state == "finished"
    recorder = run.recorder
    runner_done = [r for r in [recorder] if r is not None and r.run_id is not None]
    assert runner_done, "the run was not recorded"
    for _ in range(100):  # the recorder writes the end after the slot is free
        if runs_of(first).store.get_run(recorder.run_id)["status"] == "finished":
            break
        time.sleep(0.1)
    second = app(TINY)  # another session, the same settings and seed
    second.button(key="btn_start").click().run()
    assert not second.exception, second.exception
    entry = runs_of(second).current
    assert entry.reused and isinstance(entry.run, SavedRun) and entry.run.id == recorder.run_id
    note = shown(texts(second.info))
    assert "trained earlier at" in note and f"saved run #{recorder.run_id}" in note, note
    assert [r.accuracy for r in entry.run.history] == [r.accuracy for r in run.history]
    assert runner.default_slots().running == 0 and runner.default_slots().waiting == 0  # nothing trains
    anew = second.button(key="btn_anew")
    assert anew.label == "Train it anew" and not anew.disabled
    anew.click().run()
    fresh = runs_of(second).current
    assert isinstance(fresh.run, runner.TrainingRun) and not fresh.reused and fresh.run is not run
    assert fresh.run.join(90) and fresh.run.state == "finished"
    assert [r.accuracy for r in fresh.run.history] == [r.accuracy for r in run.history]  # deterministic
