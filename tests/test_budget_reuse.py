"""Issue 18 parts 2 and 3: fair share in the slot queue, the compute budget (refusal, the over-time stop), the
reuse key, joining an identical live run and reopening an identical finished one."""
from __future__ import annotations

import threading
import time

import pytest

from dashboard.state.session import SessionRuns
from vaegmm.model.config import preset
from vaegmm.model.params import settings_from_config
from vaegmm.runs.reuse import LiveRuns, equivalent_store_keys, resolved_precision, reuse_key
from vaegmm.runs.runner import TrainingRun, warm_up
from vaegmm.runs.slots import SlotManager, threads_per_run
from vaegmm.runs.state import FINISHED, RUNNING, STOPPED
from vaegmm.sweeps import budget
from vaegmm.sweeps.budget import max_run_seconds, overtime_seconds, refusal, run_cost


@pytest.fixture(autouse=True)
def _reuse_on(monkeypatch):
    monkeypatch.setenv("VAEGMM_REUSE", "on")  # the suite turns it off (tests/conftest.py)


def tiny(**changes):
    base = dict(data__n=200, vae__latent_dim=4, vae__epochs=2, vae__batch_size=100, iterations=2, gmm__sweeps=20,
                codes="mean")
    base.update(changes)
    return preset("quick-demo").replace(**base)


def wait_for(cond, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


# ------------------------------------------------------------------------------------------ fair share
class Ticket:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


def served_order(slots: SlotManager, tickets: list, owners: dict) -> list[str]:
    """Queue every ticket (in list order), then let them take the slot one at a time; the order they got it."""
    entries = {t: slots.enqueue(t, owner=owners[t]) for t in tickets}
    got, lock = [], threading.Lock()

    def wait(t):
        assert slots.acquire(t, threading.Event(), poll=0.01, entry=entries[t])
        with lock:
            got.append(t)

    threads = [threading.Thread(target=wait, args=(t,)) for t in tickets]
    for th in threads:
        th.start()
    for i in range(len(tickets)):
        wait_for(lambda: len(got) > i, 10)
        time.sleep(0.05)  # nobody else may have slipped in
        assert len(got) == i + 1
        slots.release(got[-1])
    for th in threads:
        th.join(5)
    return [t.name for t in got]


def test_fair_share_three_sessions_first_runs_before_second_runs():
    a, b, c = object(), object(), object()
    t = {n: Ticket(n) for n in ("a1", "a2", "a3", "b1", "c1", "b2")}
    owners = {t["a1"]: a, t["a2"]: a, t["a3"]: a, t["b1"]: b, t["c1"]: c, t["b2"]: b}
    slots = SlotManager(1)
    order = served_order(slots, [t["a1"], t["a2"], t["a3"], t["b1"], t["c1"], t["b2"]], owners)
    # each session's first run, in arrival order; then the second runs; then a's third
    assert order == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_positions_follow_the_fair_order_and_a_holder_waits_behind_others():
    a, b, c = object(), object(), object()
    slots = SlotManager(2)
    a1, a2, a3, b1, c1 = (Ticket(n) for n in ("a1", "a2", "a3", "b1", "c1"))
    assert slots.acquire(a1, threading.Event(), entry=owner_entry(slots, a1, a))
    e2, e3 = slots.enqueue(a2, owner=a), slots.enqueue(a3, owner=a)
    slots.enqueue(b1, owner=b)
    slots.enqueue(c1, owner=c)
    # a holds one slot: its further runs queue behind b's and c's first runs
    assert [slots.position(x) for x in (b1, c1, a2, a3)] == [1, 2, 3, 4]
    # the free slot goes to b1, not to a2 although a2 came first
    assert not slots.acquire(a2, _set_after(0.3), poll=0.01, entry=e2)
    assert slots.running == 1 and slots.position(b1) == 1


def owner_entry(slots, ticket, owner):
    return slots.enqueue(ticket, owner=owner)


def _set_after(seconds):
    ev = threading.Event()
    threading.Timer(seconds, ev.set).start()
    return ev


def test_runs_without_owner_keep_first_come_first_served():
    slots = SlotManager(1)
    t = [Ticket(f"s{i}") for i in range(3)]
    assert served_order(slots, t, {x: None for x in t}) == ["s0", "s1", "s2"]


def test_threads_per_run_is_threads_for_run(monkeypatch):
    monkeypatch.setenv("VAEGMM_TORCH_THREADS", "3")
    assert threads_per_run(1) == 3 and threads_per_run(8) == 3
    monkeypatch.delenv("VAEGMM_TORCH_THREADS")
    import vaegmm.runs.slots as slots_mod
    seen = []
    monkeypatch.setattr(slots_mod, "threads_for_run", lambda cap: seen.append(cap) or 7)
    assert threads_per_run(2) == 7 and seen == [2]


# ------------------------------------------------------------------------------------------ budget
def test_run_cost_counts_image_steps_and_seconds():
    cfg = tiny(data__n=1000, vae__epochs=10, iterations=3, vae__batch_size=100).to_dict()
    cost = run_cost(cfg, rate=1e-4, basis="test")
    assert cost.vae_image_steps == 1000 * 10 * 3
    assert cost.gmm_point_steps == 1000 * cfg["gmm"]["n_init"] * 4  # EM restarts x (iterations + iteration 0)
    assert cost.mini_batches == 10 * 10 * 3
    assert cost.seconds == pytest.approx(30000 * 1e-4 + 300 * budget.MINIBATCH_SECONDS + budget.STARTUP_SECONDS)
    assert cost.image_steps == cost.vae_image_steps + cost.gmm_point_steps
    gibbs = run_cost(tiny(gmm__backend="collapsed", gmm__sweeps=50).to_dict(), rate=1e-4)
    assert gibbs.gmm_point_steps == 200 * 50 * 3


def test_limit_from_env(monkeypatch):
    monkeypatch.delenv(budget.MAX_MINUTES_ENV, raising=False)
    assert max_run_seconds(10) == 600 and max_run_seconds(None) is None  # the CLI and sweeps: no limit
    monkeypatch.setenv(budget.MAX_MINUTES_ENV, "2.5")
    assert max_run_seconds(10) == 150 and max_run_seconds(None) == 150
    monkeypatch.setenv(budget.MAX_MINUTES_ENV, "0")
    assert max_run_seconds(10) is None
    monkeypatch.setenv(budget.MAX_MINUTES_ENV, "lots")
    assert max_run_seconds(10) == 600


def test_the_runaway_link_is_refused_and_a_small_run_is_not():
    big = preset("quick-demo").replace(data__n=5000, vae__epochs=1000, iterations=50, vae__batch_size=1).to_dict()
    cost = run_cost(big)
    assert cost.vae_image_steps == 250e6
    why = refusal(cost, 600)
    assert "too big for this server" in why and "10 min per run" in why and "VAEGMM_MAX_RUN_MINUTES" in why
    assert refusal(run_cost(tiny().to_dict()), 600) == ""
    assert refusal(cost, None) == ""
    small = run_cost(tiny().to_dict(), rate=1e-4)
    assert overtime_seconds(small) == pytest.approx(small.seconds + budget.OVERTIME_SLACK_S)
    long = run_cost(tiny().to_dict(), rate=1.0)
    assert overtime_seconds(long) == pytest.approx(2 * long.seconds)


class CountingSlots(SlotManager):
    def __init__(self):
        super().__init__(1)
        self.enqueued = 0

    def enqueue(self, ticket, priority=0, owner=None):
        self.enqueued += 1
        return super().enqueue(ticket, priority, owner)


def test_a_refused_start_never_takes_a_slot():
    slots = CountingSlots()
    made = []
    runs = SessionRuns(slots=slots, live=LiveRuns(), factory=lambda c, slots=None: made.append(c))
    big = preset("quick-demo").replace(data__n=5000, vae__epochs=1000, iterations=50, vae__batch_size=1)
    entry, why = runs.start(big, {"preset": "quick-demo"}, cost=run_cost(big.to_dict()), limit_s=600)
    assert entry is None and "too big" in why
    assert made == [] and slots.enqueued == 0 and runs.current is None and runs.entries == []


# ------------------------------------------------------------------------------------------ reuse key
def test_reuse_key_equal_for_equal_runs_and_different_otherwise():
    base = tiny()
    assert reuse_key(base) == reuse_key(tiny())
    assert resolved_precision(base.replace(vae__precision="auto")) in ("fp32", "bf16")
    if resolved_precision(base.replace(vae__precision="auto")) == "fp32":  # this AVX2-only CPU: auto is fp32
        assert reuse_key(base.replace(vae__precision="auto")) == reuse_key(base)
        assert len(equivalent_store_keys(base)) == 2
    assert reuse_key(base.replace(vae__precision="bf16")) != reuse_key(base)
    assert reuse_key(base.replace(vae__device="cpu")) == reuse_key(base.replace(vae__device="auto")) or \
        resolved_precision(base) != "fp32"
    assert reuse_key(base.replace(seed=1)) != reuse_key(base)
    assert reuse_key(base.replace(vae__epochs=3)) != reuse_key(base)
    assert reuse_key(base.replace(feedback=False)) != reuse_key(base)


# ------------------------------------------------------------------------------------------ real runs
@pytest.fixture(scope="module")
def _warm():
    warm_up(background=False)


def test_a_run_past_its_time_limit_is_stopped_with_the_message(_warm):
    run = TrainingRun(tiny(vae__epochs=3000, vae__batch_size=25), slots=SlotManager(1))
    run.time_limit, run.time_limit_message = 1.0, "it trained for more than twice its estimate"
    assert run.start()
    wait_for(lambda: run.state == RUNNING, 30)
    assert run.join(60)
    s = run.snapshot()
    assert s.state == STOPPED and s.message == "it trained for more than twice its estimate"


def test_same_settings_join_the_live_run_instead_of_training(_warm):
    slots, live = SlotManager(2), LiveRuns()
    owner = SessionRuns(slots=slots, live=live)
    other = SessionRuns(slots=slots, live=live)
    cfg = tiny(vae__epochs=400, vae__batch_size=50)
    mine, why = owner.start(cfg, settings_from_config(cfg, "quick-demo"))
    assert why == "" and not mine.joined
    joined, why = other.start(tiny(vae__epochs=400, vae__batch_size=50), settings_from_config(cfg, "quick-demo"))
    assert joined.run is mine.run and joined.joined and "Joined an identical run started at" in joined.note
    assert slots.running + slots.waiting == 1  # one run, one slot
    different, _ = other.start(cfg.replace(seed=5), settings_from_config(cfg.replace(seed=5), "quick-demo"))
    assert different.run is not mine.run and not different.joined
    other.reset()  # leaving a run stops only this session's own run
    owner.stop_all("done")
    assert mine.run.join(60) and different.run.join(60)
    assert mine.run.state == STOPPED


def test_a_run_others_follow_survives_its_owner_leaving(_warm):
    slots, live = SlotManager(1), LiveRuns()
    owner, follower = SessionRuns(slots=slots, live=live), SessionRuns(slots=slots, live=live)
    cfg = tiny()
    mine, _ = owner.start(cfg, settings_from_config(cfg, "quick-demo"))
    joined, _ = follower.start(tiny(), settings_from_config(cfg, "quick-demo"))
    assert joined.run is mine.run
    owner.release(0.0)  # the owner's tab closed: the follower still watches, so it trains on
    assert mine.run.join(60) and mine.run.state == FINISHED


def test_a_started_run_is_followable_by_its_library_id_until_its_record_is_final(_warm, tmp_path):
    """Issue 27: the session registers each run it starts with the follower hub (drawing the share link changes
    nothing on the server); ``?run=<id>`` follows it once it has a library id, until it has ended and its record
    is written."""
    from dashboard.follow.hub import FollowHub
    from vaegmm.store import RunStore

    hub = FollowHub()
    with RunStore(tmp_path / "runs.db") as store:
        session = SessionRuns(slots=SlotManager(1), live=LiveRuns(), store=store, hub=hub)
        cfg = tiny(vae__epochs=200, vae__batch_size=50)
        entry, _ = session.start(cfg, settings_from_config(cfg, "quick-demo"))
        run = entry.run
        wait_for(lambda: run.library_id is not None, 60)
        assert hub.live(run.library_id) is run and hub.channel(run.library_id).run is run
        assert run.join(120) and run.ended and run.state == FINISHED
        assert hub.live(run.library_id) is None and store.get_run(run.library_id)["status"] == "finished"


def test_the_cli_is_limited_only_when_the_variable_is_set(monkeypatch, tmp_path, capsys):
    from vaegmm.cli import main
    from vaegmm.sweeps.budget import limit_refusal

    big = ["run", "--n", "5000", "--epochs", "1000", "--iterations", "50", "--batch-size", "1", "--no-store",
           "--out", str(tmp_path / "out"), "--quiet"]
    monkeypatch.delenv(budget.MAX_MINUTES_ENV, raising=False)
    assert limit_refusal(preset("quick-demo").replace(data__n=5000, vae__epochs=1000, iterations=50,
                                                      vae__batch_size=1).to_dict()) == ""  # no limit by default
    monkeypatch.setenv(budget.MAX_MINUTES_ENV, "10")
    assert main(big) == 2
    assert "too big for this server" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_rate_leaves_out_runs_dominated_by_their_start_up():
    def row(n, epochs, iterations, seconds):
        return {"host": None, "seconds": seconds, "config": {"data": {"n": n}, "vae": {"epochs": epochs},
                                                             "iterations": iterations}}

    class Store:
        def list_runs(self, **kw):
            return [row(200, 2, 2, 3.0), row(200, 2, 2, 3.5), row(2000, 100, 5, 50.0)]

    rate, basis = budget.measured_rate(Store())
    assert rate == pytest.approx(50.0 / 1e6) and basis == "from 1 earlier run on this server"
    assert budget.measured_rate(None) == (None, "")
