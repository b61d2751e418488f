"""Issue 18 part 1, the follower's push channel without a server: the frame a follower receives (its content and
its Server-Sent Event form), one encode per change of the run however many follow it, the same bytes for all,
and the hub's live runs."""
from __future__ import annotations

import asyncio
import json
import types

import numpy as np

from dashboard.follow import frames as ff
from dashboard.follow.hub import FollowHub, FrameChannel
from vaegmm.model.config import preset
from vaegmm.model.mutual import ProgressEvent
from vaegmm.runs.snapshots import CodeSnapshot
from vaegmm.runs.state import FINISHED, RunState

N = 3000


def config():
    return preset("quick-demo").replace(data__n=N, vae__epochs=10, iterations=5)


def result(i: int, seed: int):
    xy = np.random.default_rng(seed).normal(size=(N, 2)).astype(np.float32)
    return types.SimpleNamespace(iteration=i, projection=xy, accuracy=0.1 + 0.1 * i)


class FakeRun:
    """The reading side of a TrainingRun over a real RunState (no worker): what FrameChannel reads."""

    def __init__(self, name: str = "run 3", library_id: int = 5) -> None:
        self.config = config()
        self.name = name
        self.id = id(self)  # the server's own id (TrainingRun.id)
        self.library_id = library_id
        self.thread_alive = True  # its pump: the library's record of the end comes after the state's
        self._run = RunState(self.config)
        self._run.start()
        self._run.slot_taken()
        self.labels = np.arange(N) % 10

    @property
    def state(self):
        return self._run.state

    @property
    def ended(self):
        return self.state in ("finished", "stopped", "failed") and not self.thread_alive

    def snapshot(self):
        return self._run.snapshot(3, self.name, self.config)

    def finish_iterations(self, n: int) -> None:
        for i in range(n):
            self._run.on_result(result(i, seed=i), 1.0)

    def epoch(self, iteration: int, epoch: int, seed: int) -> None:
        self._run.on_progress(ProgressEvent("vae", iteration, 5, epoch, 10), [0.5], [0.1])
        xy = np.random.default_rng(100 + seed).normal(size=(N, 2)).astype(np.float32)
        self._run.on_live(CodeSnapshot(iteration, epoch, 10, np.zeros((N, 4), np.float16), xy, 0.5))


def test_frame_in_a_vae_update_has_the_owners_words_and_the_live_picture():
    run = FakeRun()
    run.finish_iterations(2)  # iterations 0 and 1
    run.epoch(2, 3, seed=7)
    snap = run.snapshot()
    f = ff.frame(snap, run.labels, run_id=42, version=5)
    assert f["run"] == 42 and f["v"] == 5 and f["state"] == "running" and not f["terminal"]
    assert f["status"].startswith("run 42 · iteration 2 of 5 · ")  # named by its library id, as the title
    assert f["status"].endswith("1.0 s per iteration")  # the mean of the finished iterations 1..
    assert f["progress"] == [0.3, "iteration 2: VAE epoch 3 of 10"]  # the one progress line
    assert f["accuracy"] == [[0, 0.1], [1, 0.2]]
    pic = f["picture"]
    assert pic["title"] == "the codes right now, during the VAE update"  # what is drawn, not a second progress
    idx = ff.subset(N)
    assert len(pic["x"]) == len(pic["y"]) == len(pic["label"]) == len(idx) == 1500  # every 2nd of 3000
    np.testing.assert_allclose(pic["x"], snap.live.projection[idx, 0], atol=5e-4)  # the live codes, not iteration 1
    assert pic["label"] == (idx % 10).tolist()
    x0, x1, y0, y1 = pic["range"]
    assert x0 < min(pic["x"]) and x1 > max(pic["x"]) and y0 < min(pic["y"]) and y1 > max(pic["y"])
    event = ff.sse_event(f["v"], ff.frame_json(f)).decode()
    assert event.startswith("id: 5\nevent: frame\ndata: {") and event.endswith("}\n\n")
    assert json.loads(event.split("data: ", 1)[1]) == f


def test_frame_between_updates_shows_the_last_iteration_and_the_end():
    run = FakeRun()
    run.finish_iterations(1)
    f = ff.frame(run.snapshot(), run.labels, 1, 1)
    assert f["picture"]["title"] == "iteration 0: accuracy 0.100"
    assert f["status"].startswith("run 1 · iteration 0 of 5 · ")
    run._run.finish(FINISHED, "")
    f = ff.frame(run.snapshot(), run.labels, 1, 2, ended=False)  # its record is still being written
    assert f["state"] == "finished" and not f["terminal"] and f["progress"] == [1.0, "epoch 10 of 10"]
    assert ff.frame(run.snapshot(), run.labels, 1, 3, ended=True)["terminal"]
    assert ff.frame(FakeRun().snapshot(), None, 1, 1)["picture"] is None  # before iteration 0


def drain(channel: FrameChannel, followers: int, steps) -> list[list[bytes]]:
    """``followers`` streams of ``channel`` read concurrently while ``steps`` change the run; what each got."""
    got: list[list[bytes]] = [[] for _ in range(followers)]

    async def follow(k):
        async for chunk in channel.stream():
            if not chunk.startswith(b":"):
                got[k].append(chunk)

    async def main():
        tasks = [asyncio.create_task(follow(k)) for k in range(followers)]
        await asyncio.sleep(0.05)
        for step in steps:
            before = channel.version
            step()
            for _ in range(300):  # until the poller has encoded the change and every follower has it (<= ~3 s)
                await asyncio.sleep(0.01)
                if channel.version > before and all(len(g) == channel.version for g in got):
                    break
        await asyncio.wait_for(asyncio.gather(*tasks), 10)

    asyncio.run(main())
    return got


def test_one_encode_per_change_for_fifty_followers():
    run = FakeRun()
    run.finish_iterations(2)
    channel = FrameChannel(9, run)
    steps = [lambda: run.epoch(2, 1, seed=1), lambda: run.epoch(2, 2, seed=2),
             lambda: run._run.finish(FINISHED, ""), lambda: setattr(run, "thread_alive", False)]
    got = drain(channel, 50, steps)
    assert channel.encodes == channel.version == 5  # the first look, then one per change
    first = got[0]
    assert len(first) == 5 and all(g == first for g in got)
    assert all(a is b for g in got for a, b in zip(g, first))  # the very same bytes object: encoded once
    frames = [json.loads(c.decode().split("data: ", 1)[1]) for c in first]
    assert [f["v"] for f in frames] == [1, 2, 3, 4, 5]
    assert frames[1]["picture"]["x"] != frames[2]["picture"]["x"]  # the picture moved
    assert frames[-2]["state"] == "finished" and not frames[-2]["terminal"]  # finished, its record not yet final
    assert frames[-1]["terminal"]  # the last frame: the follower's page turns into the saved run's
    assert channel.followers == 0  # every stream ended after the last frame


def test_an_unchanged_run_is_not_encoded_again():
    run = FakeRun()
    run.finish_iterations(1)
    channel = FrameChannel(1, run)
    assert channel.refresh() and not channel.refresh() and not channel.refresh()
    run.epoch(1, 1, seed=0)
    assert channel.refresh() and channel.encodes == 2


def test_hub_follows_a_run_by_its_library_id_until_it_has_ended():
    hub, run = FollowHub(), FakeRun(library_id=None)
    assert hub.live(5) is None and hub.live(None) is None
    hub.register(run)  # when it starts: queued, no library id yet
    assert hub.channel(5) is None and hub.live(5) is None
    run.library_id = 5  # it took its slot: the recorder has its id
    channel = hub.channel(5)
    assert hub.live(5) is run and hub.channel(5) is channel
    run._run.finish(FINISHED, "")
    assert hub.live(5) is run  # finished, but its record is not final yet: still the follower page
    run.thread_alive = False
    assert hub.live(5) is None and hub.channel(5) is channel  # its last frame is still served


def test_websocket_text_is_the_same_frame_as_the_event():
    """The follower page's WebSocket messages are the JSON of the very frames the SSE stream sends."""
    run = FakeRun()
    run.finish_iterations(1)
    channel = FrameChannel(4, run)

    async def first(text: bool):
        async for item in channel.stream(text=text):
            return item

    texts = asyncio.run(first(True))
    event = asyncio.run(first(False))
    assert isinstance(texts, str) and texts is channel.latest_text  # encoded once, not per follower
    assert event == ff.sse_event(1, texts) and json.loads(texts)["v"] == 1
