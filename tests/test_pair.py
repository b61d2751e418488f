"""The with/without-feedback pair (issue 19): the two runs share images, initial weights and every noise stream,
so until feedback first reaches the prior they compute the same numbers; and the pair of worker processes."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vaegmm.core.threads import TORCH_THREADS_ENV
from vaegmm.model.config import preset
from vaegmm.runs.pair import WITH, WITHOUT, Gap, PairRun, accuracy_gap, pair_configs
from vaegmm.runs.runner import TrainingRun, warm_up
from vaegmm.runs.slots import SlotManager
from vaegmm.runs.state import FINISHED
from vaegmm.runs.train import train_run


def tiny(**changes):
    """200 images of the feedback-lesson preset, 3 epochs x 3 iterations, sampled codes (every noise stream used)."""
    base = dict(data__n=200, vae__epochs=3, vae__batch_size=50, iterations=3, gmm__n_init=2)
    base.update(changes)
    return preset("feedback-lesson").replace(**base)


def traced(config):
    """Train ``config`` in this process; return (run, images, labels, initial weights)."""
    seen = {}

    def on_data(images, labels):
        seen["images"], seen["labels"] = np.array(images), np.array(labels)

    def on_learner(learner):  # called before iteration 0: the weights are the initial ones
        seen["weights"] = {k: v.detach().clone() for k, v in learner.model.state_dict().items()}

    run = train_run(config, on_data=on_data, on_learner=on_learner, threads=1)
    assert run.status == FINISHED, run.error_text()
    return run, seen["images"], seen["labels"], seen["weights"]


def test_pair_configs_differ_only_in_feedback():
    cfg = preset("feedback-lesson")
    on, off = pair_configs(cfg.replace(feedback=False))
    assert on.feedback is True and off.feedback is False
    assert on.replace(feedback=False).to_dict() == off.to_dict() == cfg.replace(feedback=False).to_dict()


@pytest.fixture(scope="module")
def trained_pair():
    on, off = pair_configs(tiny())
    return traced(on), traced(off)


def test_pair_shares_data_and_initial_weights(trained_pair):
    (_, x_on, y_on, w_on), (_, x_off, y_off, w_off) = trained_pair
    assert x_on.shape == (200, 784) and np.array_equal(x_on, x_off)
    assert np.array_equal(y_on, y_off) and np.bincount(y_on).tolist() == [20] * 10
    assert list(w_on) == list(w_off) and len(w_on) >= 4
    for name in w_on:
        assert torch.equal(w_on[name], w_off[name]), name


def test_first_update_gives_identical_codes_then_feedback_makes_the_difference(trained_pair):
    (on, *_), (off, *_) = trained_pair
    assert [r.iteration for r in on.history] == [r.iteration for r in off.history] == [0, 1, 2, 3]
    for i in (0, 1):  # iteration 0 (untrained) and 1 (plain VAE: no message yet): the same numbers exactly
        a, b = on.history[i], off.history[i]
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.encoder_mean, b.encoder_mean)
        assert np.array_equal(a.classes, b.classes) and a.accuracy == b.accuracy
        assert a.recon == b.recon and a.kl == b.kl
    # iteration 2 is the first VAE update with the class means as the prior: only the feedback run changes
    assert not np.array_equal(on.history[2].encoder_mean, off.history[2].encoder_mean)
    assert on.history[2].kl != off.history[2].kl


def result(i, acc):
    return SimpleNamespace(iteration=i, accuracy=acc)


def test_accuracy_gap_at_the_latest_common_iteration():
    assert accuracy_gap([result(0, 0.1)], [result(0, 0.1)]) is None  # iteration 0 is the same picture
    assert accuracy_gap([], [result(0, 0.1), result(1, 0.4)]) is None
    gap = accuracy_gap([result(0, 0.1), result(1, 0.40), result(2, 0.52)], [result(0, 0.1), result(1, 0.40)])
    assert gap == Gap(1, 0.40, 0.40) and gap.points == 0.0
    gap = accuracy_gap([result(0, 0.1), result(1, 0.40), result(2, 0.52)],
                       [result(0, 0.1), result(1, 0.40), result(2, 0.478), result(3, 0.6)])
    assert gap.iteration == 2 and gap.points == pytest.approx(4.2)
    assert gap.label() == "feedback +4.2 points (iteration 2)"
    assert Gap(5, 0.5, 0.53).label() == "feedback -3.0 points (iteration 5)"


def test_pair_of_worker_processes_trains_both_and_matches_in_process_training(trained_pair, monkeypatch):
    monkeypatch.setenv(TORCH_THREADS_ENV, "1")  # the workers compute with 1 thread, as trained_pair did
    warm_up(background=False)
    on, off = pair_configs(tiny())
    slots = SlotManager(2)
    pair = PairRun(TrainingRun(on, slots=slots, keep_images=False), TrainingRun(off, slots=slots, keep_images=False))
    assert pair.start()
    assert slots.running + slots.waiting == 2
    t0 = time.monotonic()
    while any(s.is_active for s in pair.snapshots().values()) and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    snaps = pair.snapshots()
    assert [snaps[WITH].state, snaps[WITHOUT].state] == [FINISHED, FINISHED]
    assert snaps[WITH].config.feedback is True and snaps[WITHOUT].config.feedback is False
    (ref_on, *_), (ref_off, *_) = trained_pair
    h_on, h_off = pair.with_run.history, pair.without_run.history
    assert np.array_equal(h_on[1].codes, h_off[1].codes)
    assert [r.accuracy for r in h_on] == [r.accuracy for r in ref_on.history]
    assert [r.accuracy for r in h_off] == [r.accuracy for r in ref_off.history]
    gap = pair.gap()
    assert gap.iteration == 3
    assert gap.points == pytest.approx(100 * (ref_on.history[3].accuracy - ref_off.history[3].accuracy))
