"""The files of a run's picture: an animated GIF and MP4 of a finished or stopped run, and a PNG of the picture
on screen, each drawn in a worker process when its button is pressed, then offered for download."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

from dashboard.components.replay_panel import replay_of
from dashboard.state.session import RunEntry
from vaegmm.core.singleton import process_singleton
from vaegmm.runs.state import TERMINAL
from vaegmm.views import animation


@process_singleton
def _file_jobs() -> ThreadPoolExecutor:
    """One small thread pool for the whole server: each job waits on a worker process drawing a file."""
    return ThreadPoolExecutor(2, thread_name_prefix="vaegmm-files")


def _file_button(col, entry: RunEntry, fmt: str, label: str, key: tuple, make, file_name: str, mime: str,
                 help: str, disabled: Optional[str] = None) -> None:
    """Two steps: a button that starts drawing the file in a worker process (seconds), then, once it is ready, a
    download button holding its bytes. (A download button with a callable gets a new file id at every rerun of the
    fragment, every 0.5 s, and a click that reaches the server after the next rerun finds its id gone; bytes get an
    id from their content, the same at every rerun.)"""
    jobs = entry.figure_cache.setdefault("_files", {})
    fut = jobs.get(fmt)
    if fut is not None and fut.key != key and fut.done():
        fut = None  # drawn for another view or state: draw again
    if fut is None:
        def start() -> None:
            f = _file_jobs().submit(make)
            f.key = key
            jobs[fmt] = f

        col.button(label, icon=":material/movie:" if fmt == "mp4" else ":material/image:" if fmt == "png"
                   else ":material/gif_box:", key=f"mk_{fmt}", on_click=start, width="stretch",
                   disabled=bool(disabled), help=disabled or help)
    elif not fut.done():
        col.button(f"drawing {fmt.upper()}…", icon=":material/hourglass_top:", key=f"mk_{fmt}", disabled=True,
                   width="stretch")
    elif fut.exception() is not None:
        col.button(f"{fmt.upper()} failed: retry", icon=":material/error:", key=f"mk_{fmt}", width="stretch",
                   on_click=lambda: jobs.pop(fmt, None), help=f"{type(fut.exception()).__name__}: {fut.exception()}")
    else:
        data = fut.result()
        col.download_button(f"Download {fmt.upper()} ({len(data) / 1e6:.1f} MB)" if len(data) > 1e5 else
                            f"Download {fmt.upper()}", icon=":material/download:", data=data, file_name=file_name,
                            mime=mime, key=f"dl_{fmt}", on_click="ignore", width="stretch",
                            help=f"{help} Ready; press {label} again after changing the view to draw it anew.")


def export_buttons(entry: RunEntry, snap, kind: str, by: str, shown, live, result, cols) -> None:
    """The animated GIF and MP4 of a finished or stopped run (960 x 720, 10 fps) and a PNG of the picture on
    screen. Each is drawn when its button is pressed, in a worker process (seconds of matplotlib must not hold the
    server's GIL), and then offered for download (see :func:`_file_button`)."""
    run = entry.run
    terminal = snap.state in TERMINAL
    tsne_pending = kind == "tsne" and any(run.views.tsne_status(r.iteration) != "ready" for r in snap.history)
    if terminal:
        base = ("anim", kind, by, snap.state, len(snap.history), len(run.replay_log))

        def make(fmt):
            def build() -> bytes:
                try:
                    rp, _ = replay_of(entry, kind, by, animation.MAX_FRAMES)
                except animation.Pending:
                    rp, _ = replay_of(entry, "pca", by, animation.MAX_FRAMES)
                rp.caption = f"VAE + GMM mutual learning · run #{run.id}: {entry.label.split(' ', 1)[-1]}"
                return animation.file_bytes_in_worker(rp, fmt)
            return build

        wait = "t-SNE is still being computed for some iterations" if tsne_pending else None
        _file_button(cols[0], entry, "gif", "GIF", base, make("gif"), f"vaegmm_run{run.id}_{kind}.gif", "image/gif",
                     "Animated GIF of the whole run (960 x 720, about 50 frames), for a slide: drawn in a few "
                     "seconds.", wait)
        if animation.mp4_available():
            _file_button(cols[1], entry, "mp4", "MP4", base, make("mp4"), f"vaegmm_run{run.id}_{kind}.mp4",
                         "video/mp4", "The same animation as an H.264 video (10 fps).", wait)
    view = shown.view
    labels = run.labels
    if live is not None:
        base_it = next(r for r in snap.history if r.iteration == live.iteration - 1)
        frame = animation.Frame(live.iteration, live.epoch, live.epochs, False, view.xy,
                                np.asarray(base_it.classes if by == "class" else labels), view.means,
                                float(base_it.accuracy))
        key = ("png", view.kind, by, "live", live.iteration)  # one PNG per update: it stays downloadable
    else:
        frame = animation.Frame(result.iteration, len(result.recon), len(result.recon), True, view.xy,
                                np.asarray(result.classes if by == "class" else labels), view.means,
                                float(result.accuracy))
        key = ("png", view.kind, by, result.iteration)
    groups = np.unique(frame.groups)
    rp = animation.Replay([frame], view.kind, by,
                          {int(g): (f"class {g}" if by == "class" else f"digit {g}") for g in groups},
                          run.views.ranges(view.kind, view.xy), view.axes)
    _file_button(cols[2], entry, "png", "PNG", key, lambda: animation.file_bytes_in_worker(rp, "png"),
                 f"vaegmm_run{run.id}_it{frame.iteration}_{view.kind}.png", "image/png",
                 "The picture on screen as a 960 x 720 PNG.")

