"""Replay of a run and the files a teacher pastes into a lecture: an animated GIF, an MP4 and a PNG (no Streamlit).

:func:`replay_frames` lays out every picture of a run in order: iteration 0, then each VAE update's in-update
snapshots (from the run's :class:`~vaegmm.runs.snapshots.SnapshotLog`) followed by the finished iteration. The
dashboard's Replay (a Plotly animation) and the files here draw the same frames. Points keep the colour of their
digit, or of their GMM class in the last finished iteration (the classes the VAE is being pulled toward), and the
crosses are those classes' means.

Files are drawn with matplotlib (Agg, no display) at 960 x 720 (a 4:3 slide), 10 frames a second, the iteration,
the epoch and the accuracy written on every frame. They are written to a temporary file beside the target and
renamed into place, so a failed export leaves no half-written file. The MP4 needs an ffmpeg binary: the one the
optional ``imageio-ffmpeg`` wheel ships (nothing is downloaded at run time, but the wheel is 170 MB installed, so
it is not a requirement) or ``ffmpeg`` on the PATH; without one, the GIF and PNG remain.
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from vaegmm.core.atomic import atomic_write
from vaegmm.views import scatter
from vaegmm.views.jobs import compute_in_worker
from vaegmm.views.latent2d import AXES, LDA, PCA, TSNE, RunViews

SIZE = (960, 720)  # pixels: a 4:3 slide
FPS = 10
HOLD = 8  # a finished iteration stays on screen this many frames (0.8 s at 10 fps)
END_HOLD = 20  # ... and the last frame 2 s
MAX_FRAMES = 50  # frames of an animation (finished iterations always included; snapshots evenly thinned)
BAR_COLOUR, BAR_TRACK = "#1565c0", "#e0e0e0"  # the progress bar at the foot of each frame, and its track


class Pending(Exception):
    """Some frames' view is still being computed (t-SNE); ``ready`` of ``total`` iterations are done."""

    def __init__(self, ready: int, total: int):
        super().__init__(f"{ready} of {total} iterations ready")
        self.ready, self.total = ready, total


@dataclass
class Frame:
    """One picture: ``xy (N, 2)``, ``groups (N,)`` (digit or GMM class of each point), ``means (K, 2)`` or None."""

    iteration: int  # the finished iteration, or the one whose VAE update is in progress
    epoch: int
    epochs: int
    finished: bool  # True: a finished iteration (its own GMM classes); False: a snapshot during the VAE update
    xy: np.ndarray
    groups: np.ndarray
    means: Optional[np.ndarray]
    accuracy: Optional[float]  # of the GMM classes shown (this iteration's when finished, else the previous
    # one's); None without labels
    title: str = ""
    label: str = ""  # short name for a slider step

    def __post_init__(self):
        if not self.title:
            self.title = scatter.replay_title(self)
        if not self.label:
            self.label = f"{self.iteration}" if self.finished else f"{self.iteration}·{self.epoch}"


@dataclass
class Replay:
    """The frames of a run in one view, with fixed axis ranges and the names for the legend."""

    frames: list
    kind: str
    colour_by: str  # "digit" or "class"
    group_names: dict = field(default_factory=dict)  # group value -> legend name
    ranges: tuple = ((-1.0, 1.0), (-1.0, 1.0))
    axes: tuple = AXES[PCA]
    caption: str = ""  # one line for the foot of a file: run and view

    def durations(self, fps: int = FPS, hold: int = HOLD, end_hold: int = END_HOLD) -> list[int]:
        """Milliseconds each frame stays on screen: finished iterations ``hold`` frames, the last ``end_hold``."""
        step = int(round(1000 / fps))
        out = [step * (hold if f.finished else 1) for f in self.frames]
        if out:
            out[-1] = step * end_hold
        return out


def _thin(items: list, keep: int) -> list:
    if keep <= 0:
        return []
    if len(items) <= keep:
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, keep).round().astype(int))
    return [items[i] for i in idx]


def replay_frames(history: Sequence, log_frames: Sequence, labels: np.ndarray, kind: str = PCA,
                  colour_by: str = "digit", views: Optional[RunViews] = None,
                  max_frames: Optional[int] = None) -> Replay:
    """Every picture of a run in ``kind`` ("pca", "lda" or "tsne"), in order: iteration 0, then per iteration its
    in-update snapshots and the finished iteration (a stopped run's last, unfinished update included).
    ``max_frames``: at most that many, the finished iterations always kept and the snapshots evenly thinned.

    t-SNE has one frame per finished iteration (there is no t-SNE of each snapshot); raises :class:`Pending` while
    some are still being computed (they are queued by this call). Raises ValueError when the view is not possible
    (LDA with fewer than 3 classes, ...): the caller falls back to PCA."""
    if not history:
        raise ValueError("the run has no finished iteration yet")
    views = views or RunViews()
    if labels is None:  # an unlabelled run: its points are coloured by GMM class
        colour_by = "class"
    else:
        labels = np.asarray(labels)
    by_it = {r.iteration: r for r in history}
    last = max(by_it)
    snaps = [f for f in log_frames if (f.iteration - 1) in by_it and (f.iteration <= last + 1)]
    if kind == TSNE:
        snaps = []
        missing = []
        for r in history:
            if views.iteration(history, r.iteration, TSNE) is None:  # ValueError: t-SNE not possible
                missing.append(r.iteration)
        if missing:
            raise Pending(len(history) - len(missing), len(history))
    if kind == LDA and any(f.lda is None for f in snaps):
        raise ValueError("LDA was not possible for some iterations (fewer than 3 GMM classes with points)")
    if max_frames is not None:
        snaps = _thin(snaps, max(0, max_frames - len(history)))

    def groups_of(r) -> np.ndarray:
        return scatter.groups_of(labels, r.classes, colour_by).astype(np.int16)

    frames: list[Frame] = []
    pending = list(snaps)
    for r in sorted(history, key=lambda r: r.iteration):
        while pending and pending[0].iteration <= r.iteration:
            frames.append(_snapshot_frame(pending.pop(0), by_it, kind, views, history, groups_of))
        v = views.iteration(history, r.iteration, kind)
        frames.append(Frame(r.iteration, len(r.recon), len(r.recon), True, v.xy, groups_of(r), v.means,
                            r.accuracy))
    for f in pending:  # a stopped run's unfinished update
        frames.append(_snapshot_frame(f, by_it, kind, views, history, groups_of))
    groups = np.unique(np.concatenate([f.groups for f in frames]))
    names = {int(g): scatter.group_name(g, colour_by) for g in groups}
    ranges = views.ranges(f"replay-{kind}", *[f.xy for f in frames])
    return Replay(frames, kind, colour_by, names, ranges, AXES[kind])


def _snapshot_frame(f, by_it, kind, views, history, groups_of) -> Frame:
    base = by_it[f.iteration - 1]
    if kind == LDA:
        axes = views.lda_axes(history, f.iteration - 1)
        xy, means = np.asarray(f.lda, dtype=np.float32), axes.transform(base.class_means)
    else:
        xy, means = np.asarray(f.pca, dtype=np.float32), np.asarray(base.class_means_2d, dtype=np.float32)
    return Frame(f.iteration, f.epoch, f.epochs, False, xy, groups_of(base), means, base.accuracy)


# ---------------------------------------------------------------------------------------------- drawing
class _Painter:
    """One matplotlib figure reused for every frame (set_offsets is far cheaper than a new scatter)."""

    def __init__(self, replay: Replay, size: tuple = SIZE, point_size: Optional[float] = None):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        self.replay = replay
        w, h = size
        self.fig = Figure(figsize=(w / 100, h / 100), dpi=100, facecolor="white")
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0.06, 0.08, 0.74, 0.78))
        n = len(replay.frames[0].xy) if replay.frames else 1
        s = point_size or scatter.frame_point_size(n)
        self.colours = np.array([_rgba(scatter.group_colour(g))
                                 for g in range(max(replay.group_names, default=0) + 1)])
        self.points = self.ax.scatter(np.zeros(n), np.zeros(n), s=s, linewidths=0, alpha=scatter.FRAME_POINT_ALPHA)
        self.means = self.ax.scatter([], [], **scatter.FRAME_MEANS)
        (x0, x1), (y0, y1) = replay.ranges
        self.ax.set_xlim(x0, x1)
        self.ax.set_ylim(y0, y1)
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.ax.set_xlabel(replay.axes[0], fontsize=12)
        self.ax.set_ylabel(replay.axes[1], fontsize=12)
        handles = [Line2D([], [], marker="o", ls="", color=scatter.group_colour(g), label=name, markersize=8)
                   for g, name in replay.group_names.items()]
        handles.append(Line2D([], [], marker="x", ls="", color=scatter.MEANS_COLOUR, label=scatter.MEANS_NAME,
                              markersize=9, markeredgewidth=2))
        self.fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.81, 0.47), frameon=False,
                        fontsize=11)
        self.title = self.fig.text(0.06, 0.94, "", fontsize=20, weight="bold", va="center")
        self.subtitle = self.fig.text(0.06, 0.895, "", fontsize=14, va="center", color="#333")
        self.fig.text(0.06, 0.035, replay.caption or scatter.frame_caption(replay.kind), fontsize=11, color="#666",
                      va="center")
        self.bar_bg = self.fig.add_artist(_bar(self.fig, 1.0, BAR_TRACK))
        self.bar = self.fig.add_artist(_bar(self.fig, 0.0, BAR_COLOUR))
        self.total = max(1, len(replay.frames) - 1)

    def draw(self, i: int) -> np.ndarray:
        """Frame ``i`` as an ``(H, W, 3) uint8`` RGB image."""
        f = self.replay.frames[i]
        self.points.set_offsets(np.asarray(f.xy, dtype=np.float64))
        self.points.set_facecolors(self.colours[np.asarray(f.groups, dtype=np.int64) % len(self.colours)])
        if f.means is not None and len(f.means):
            self.means.set_offsets(np.asarray(f.means, dtype=np.float64))
        else:
            self.means.set_offsets(np.empty((0, 2)))
        title, subtitle = scatter.frame_titles(f)
        self.title.set_text(title)
        self.subtitle.set_text(subtitle)
        self.bar.set_width(0.88 * i / self.total)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()


def _bar(fig, frac: float, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((0.06, 0.006), 0.88 * frac, 0.012, transform=fig.transFigure, color=colour, lw=0)


def _rgb(hex_colour: str) -> tuple:
    h = hex_colour.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def _rgba(hex_colour: str) -> tuple:
    """A group's colour as matplotlib's (r, g, b, a) in [0, 1], at the frames' point opacity."""
    return tuple(v / 255 for v in _rgb(hex_colour)) + (scatter.FRAME_POINT_ALPHA,)


def _palette_image():
    """A fixed GIF palette (white, greys, black, the 20 group colours and their blends with white), so every
    frame maps to the same colours and the file compresses well."""
    from PIL import Image

    cols = [(255, 255, 255), (0, 0, 0)] + [(g, g, g) for g in range(32, 256, 16)]
    cols += [_rgb(BAR_COLOUR), _rgb(BAR_TRACK)]
    for hexc in scatter.GROUP_COLOURS:
        rgb = np.array(_rgb(hexc), dtype=np.float64)
        for a in (1.0, 0.8, 0.6, 0.4, 0.2):  # point over white at partial coverage
            cols.append(tuple(int(round(v)) for v in a * rgb + (1 - a) * 255))
    cols = cols[:256]
    flat = [c for rgb in cols for c in rgb] + [0] * (768 - 3 * len(cols))
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat)
    return pal


# ---------------------------------------------------------------------------------------------- files
def write_gif(replay: Replay, path, size: tuple = SIZE, fps: int = FPS, hold: int = HOLD,
              end_hold: int = END_HOLD) -> Path:
    """An animated GIF of ``replay`` (one GIF frame per replay frame, finished iterations held longer), looping
    forever; written atomically. Returns the path."""
    if not replay.frames:
        raise ValueError("nothing to animate: the run has no frames")
    from PIL import Image

    painter = _Painter(replay, size)
    pal = _palette_image()
    images = [Image.fromarray(painter.draw(i)).quantize(palette=pal, dither=Image.Dither.NONE)
              for i in range(len(replay.frames))]
    durations = replay.durations(fps, hold, end_hold)

    def write(tmp: Path) -> None:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                       optimize=False, disposal=1)

    return atomic_write(path, write)


def ffmpeg_exe() -> Optional[str]:
    """An ffmpeg binary for the MP4: the one the optional ``imageio-ffmpeg`` wheel ships (``pip install
    imageio-ffmpeg``; no download at run time), else ``ffmpeg`` on the PATH (Debian: ``apt-get install ffmpeg``),
    else None."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and os.path.exists(exe):
            return exe
    except Exception:
        pass
    import shutil

    return shutil.which("ffmpeg")


def mp4_available() -> bool:
    """Whether an MP4 can be written (see :func:`ffmpeg_exe`)."""
    return ffmpeg_exe() is not None


def write_mp4(replay: Replay, path, size: tuple = SIZE, fps: int = FPS, hold: int = HOLD,
              end_hold: int = END_HOLD) -> Path:
    """An H.264 MP4 (yuv420p: plays in PowerPoint, Keynote, browsers) of ``replay`` at ``fps``, finished iterations
    repeated ``hold`` frames; written atomically. Raises ValueError when no ffmpeg is available."""
    import subprocess

    if not replay.frames:
        raise ValueError("nothing to animate: the run has no frames")
    exe = ffmpeg_exe()
    if exe is None:
        raise ValueError("MP4 needs ffmpeg: pip install imageio-ffmpeg (or apt-get install ffmpeg)")
    painter = _Painter(replay, size)
    step = 1000 / fps
    repeats = [max(1, int(round(d / step))) for d in replay.durations(fps, hold, end_hold)]

    def write(tmp: Path) -> None:
        cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}",
               "-r", str(fps), "-i", "-", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "23",
               "-movflags", "+faststart", "-f", "mp4", str(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for i, rep in enumerate(repeats):
                img = np.ascontiguousarray(painter.draw(i)).tobytes()
                for _ in range(rep):
                    proc.stdin.write(img)
            proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace")
            if proc.wait(120) != 0:
                raise ValueError(f"ffmpeg failed: {err.strip()[-300:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    return atomic_write(path, write)


def png_bytes(replay: Replay, index: int = -1, size: tuple = SIZE) -> bytes:
    """Frame ``index`` (default the last) of ``replay`` as a PNG."""
    from PIL import Image

    if not replay.frames:
        raise ValueError("nothing to draw: the run has no frames")
    painter = _Painter(replay, size)
    buf = io.BytesIO()
    Image.fromarray(painter.draw(index % len(replay.frames))).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def file_bytes(replay: Replay, fmt: str, **kw) -> bytes:
    """The animation as bytes: ``fmt`` "gif" or "mp4" (written to a temporary file, read, removed), or "png"."""
    if fmt == "png":
        return png_bytes(replay, **kw)
    writer = {"gif": write_gif, "mp4": write_mp4}.get(fmt)
    if writer is None:
        raise ValueError(f"unknown format {fmt!r} (gif, mp4 or png)")
    with tempfile.TemporaryDirectory(prefix="vaegmm-anim-") as d:
        path = writer(replay, Path(d) / f"replay.{fmt}", **kw)
        return path.read_bytes()


def file_bytes_in_worker(replay: Replay, fmt: str, timeout: float = 300.0) -> bytes:
    """:func:`file_bytes` in a worker process forked from the training fork server (matplotlib's drawing holds
    the GIL for seconds: the server's pages must not wait for it)."""
    return compute_in_worker(file_bytes, (replay, fmt), timeout=timeout, name=f"vaegmm-{fmt}")
