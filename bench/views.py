#!/usr/bin/env python
"""Live views and animation benchmark (issue 11), on one real run trained the dashboard's way (a
:class:`vaegmm.runs.runner.TrainingRun`: a worker process sending live snapshots), written into the "## Views and
animation" section of BENCHMARKS.md:

* start to the first picture (iteration 0 in the run) and snapshots per second during each VAE update;
* the replay log's frames and bytes against its bound;
* LDA: fitting the axes of an iteration and projecting a snapshot;
* t-SNE of the iteration on screen as the page asks for it (a worker process, warm-started from the previous
  iteration's embedding), seconds from asking to ready, for every iteration; the last one also cold (no warm
  start); CPU seconds of one t-SNE in this process at 1 and 2 threads;
* the animated GIF of the run (at most ``vaegmm.views.animation.MAX_FRAMES`` frames, 960 x 720): seconds, size, frames;
  the MP4 (when an ffmpeg is installed) and a PNG;
(UMAP was timed once beside t-SNE, by an option of this script removed in issue 27: BENCHMARKS.md keeps its rows.)

    python bench/views.py                                   # classic preset, into BENCHMARKS.md
    python bench/views.py --quick --out -                   # tiny run, prints only
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from markdown_section import write_section  # noqa: E402
from vaegmm.views import animation  # noqa: E402
from vaegmm.model.config import preset  # noqa: E402
from vaegmm.runs.runner import TrainingRun, warm_up  # noqa: E402
from vaegmm.runs.slots import SlotManager  # noqa: E402
from vaegmm.views.latent2d import LDA, TSNE, RunViews, TsneService, fit_lda_axes, tsne_view  # noqa: E402

def cpu_of(fn, *args, **kw):
    c, w = time.process_time(), time.perf_counter()
    out = fn(*args, **kw)
    return out, time.process_time() - c, time.perf_counter() - w


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="serket-classic")
    ap.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="'-' writes nothing")
    a = ap.parse_args(argv)
    command = "python bench/views.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cfg = preset(a.preset)
    if a.quick:
        cfg = cfg.replace(data__n=300, vae__latent_dim=4, vae__epochs=40, vae__batch_size=50, iterations=2)
    warm_up(background=False)
    print(f"views benchmark: {a.preset}{' (quick)' if a.quick else ''}: N={cfg.data.n} D={cfg.vae.latent_dim} "
          f"epochs={cfg.vae.epochs} iterations={cfg.iterations}; load average {os.getloadavg()[0]:.1f}", flush=True)

    # --- 1. a run as the dashboard trains it
    run = TrainingRun(cfg, slots=SlotManager(1))
    t0 = time.monotonic()
    run.start()
    assert run.join(3600), "the run did not end"
    wall_run = time.monotonic() - t0
    snap = run.snapshot()
    assert snap.state == "finished", snap.message
    h, frames = run.history, run.snapshots
    first_s = snap.first_result_seconds
    per_it = []
    for r in h[1:]:
        k = sum(f.iteration == r.iteration for f in frames)
        per_it.append((r.iteration, k, r.seconds_vae, k / r.seconds_vae))
    rate = statistics.median(x[3] for x in per_it)
    print(f"  run: {wall_run:.1f} s, first picture {first_s:.2f} s after start, final accuracy {h[-1].accuracy:.3f}; "
          f"snapshots per iteration {[x[1] for x in per_it]}, {rate:.2f}/s", flush=True)
    log = run.replay_log

    # --- 2. LDA
    _, lda_fit_c, _ = cpu_of(lambda: [fit_lda_axes(r.codes, r.classes) for r in h[1:]])
    lda_fit_c /= max(1, len(h) - 1)
    axes = fit_lda_axes(h[-1].codes, h[-1].classes)
    _, lda_tr_c, _ = cpu_of(lambda: [axes.transform(h[-1].codes) for _ in range(100)])
    lda_tr_c /= 100

    # --- 3. t-SNE as the page asks for it: iteration after iteration, each warm-started from the previous
    views = RunViews(TsneService())
    tsne_rows = []
    for r in h:
        views.iteration(h, r.iteration, TSNE)
        views.wait_tsne(r.iteration, 600)
        assert views.tsne_status(r.iteration) == "ready", views._tsne_errors
        tsne_rows.append((r.iteration, views.tsne_seconds[r.iteration]))
        print(f"  t-SNE of iteration {r.iteration} (warm): {tsne_rows[-1][1]:.1f} s after asking", flush=True)
    cold = RunViews(TsneService())
    cold.iteration(h, h[-1].iteration, TSNE)
    cold.wait_tsne(h[-1].iteration, 600)
    cold_s = cold.tsne_seconds[h[-1].iteration]
    print(f"  t-SNE of iteration {h[-1].iteration} (cold): {cold_s:.1f} s after asking", flush=True)
    cpu_threads = {}
    for threads in (1, 2):
        _, c, w = cpu_of(tsne_view, h[-1].codes, n_jobs=threads)
        cpu_threads[threads] = (c, w)
        print(f"  t-SNE in this process, {threads} thread(s): {c:.2f} s CPU, {w:.2f} s wall", flush=True)

    # --- 4. the animation
    rp, rp_c, _ = cpu_of(animation.replay_frames, h, frames, run.labels, "pca", "class", run.views,
                         animation.MAX_FRAMES)
    with tempfile.TemporaryDirectory() as d:
        path, gif_c, gif_w = cpu_of(animation.write_gif, rp, Path(d) / "run.gif")
        gif_bytes = path.stat().st_size
        from PIL import Image

        with Image.open(path) as im:
            gif_frames, gif_size = im.n_frames, im.size
        mp4 = None
        if animation.mp4_available():
            p4, mp4_c, mp4_w = cpu_of(animation.write_mp4, rp, Path(d) / "run.mp4")
            mp4 = (mp4_w, mp4_c, p4.stat().st_size)
        _, gw_c, gw_w = cpu_of(animation.file_bytes_in_worker, rp, "gif")
        png, png_c, png_w = cpu_of(animation.png_bytes, rp)
        lda_rp = animation.replay_frames(h, frames, run.labels, LDA, "class", run.views, animation.MAX_FRAMES)
        lda_path, lda_c, lda_w = cpu_of(animation.write_gif, lda_rp, Path(d) / "lda.gif")
        lda_bytes = lda_path.stat().st_size
    print(f"  GIF: {len(rp.frames)} frames in {gif_w:.1f} s ({gif_c:.1f} s CPU), {gif_bytes / 1e6:.2f} MB; in a worker "
          f"process {gw_w:.1f} s", flush=True)

    # --- report
    n, dim = cfg.data.n, cfg.vae.latent_dim
    tsne_screen = max(s for _, s in tsne_rows)
    lines = [
        "## Views and animation",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end: the machine is shared, so wall "
        f"times include other processes' use of the cores).",
        f"Run: the {a.preset} preset{' (quick sizes)' if a.quick else ''} ({n} images, D={dim}, {cfg.vae.epochs} "
        f"epochs, {cfg.iterations} iterations) trained by `TrainingRun` as in the dashboard: {wall_run:.0f} s, final "
        f"accuracy {h[-1].accuracy:.3f}.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| start to the first picture (iteration 0 in the run) | {first_s:.2f} s | <= 2 s: "
        f"{'met' if first_s <= 2 else 'NOT met'} |",
        f"| snapshots per second during the VAE updates (median of iterations; per iteration: "
        f"{', '.join(f'{k} in {s:.1f} s' for _, k, s, _ in per_it)}) | {rate:.2f} /s | >= 0.5 /s: "
        f"{'met' if rate >= 0.5 else 'NOT met'} |",
        f"| replay log | {len(log)} frames, {log.nbytes / 1e6:.2f} MB (bound {log.max_bytes / 2 ** 20:.0f} MiB) | |",
        f"| LDA axes of one iteration (fit) | {1000 * lda_fit_c:.1f} ms CPU | |",
        f"| LDA projection of one snapshot | {1000 * lda_tr_c:.2f} ms CPU | |",
        f"| t-SNE of the iteration on screen, asking to ready (worker process, warm start; slowest of "
        f"{len(tsne_rows)}) | {tsne_screen:.1f} s | <= 15 s: {'met' if tsne_screen <= 15 else 'NOT met'} |",
        f"| t-SNE per iteration, warm-started (s) | {', '.join(f'{i}: {s:.1f}' for i, s in tsne_rows)} | |",
        f"| t-SNE of the last iteration, cold start | {cold_s:.1f} s | |",
        f"| t-SNE in-process, 1 / 2 threads (CPU s; wall s) | {cpu_threads[1][0]:.1f} / {cpu_threads[2][0]:.1f}; "
        f"{cpu_threads[1][1]:.1f} / {cpu_threads[2][1]:.1f} | |",
        f"| GIF of the run (PCA, by GMM class): {gif_frames} frames, {gif_size[0]}x{gif_size[1]} | {gif_w:.1f} s "
        f"({gif_c:.1f} s CPU, + {rp_c:.2f} s for the frames), {gif_bytes / 1e6:.2f} MB | < 20 s, < 10 MB: "
        f"{'met' if gif_w < 20 and gif_bytes < 10e6 else 'NOT met'} |",
        f"| the same GIF in a worker process (as the page's button) | {gw_w:.1f} s | |",
        f"| GIF in LDA | {lda_w:.1f} s, {lda_bytes / 1e6:.2f} MB | |",
    ]
    if mp4:
        lines.append(f"| MP4 of the run (H.264, 10 fps, held frames repeated) | {mp4[0]:.1f} s ({mp4[1]:.1f} s CPU), "
                     f"{mp4[2] / 1e6:.2f} MB | |")
    lines.append(f"| PNG of one frame | {png_w:.2f} s, {len(png) / 1e3:.0f} kB | |")
    lines += ["", "Reading: the t-SNE times are from asking (the page's first draw in t-SNE) to the embedding being "
              "ready, with the job in a fresh worker process forked from the training fork server (openTSNE's "
              "import there costs about 0.05 s: numpy and scikit-learn are preloaded) at nice 5 (behind the "
              "server, ahead of the training workers), " + str(TsneService().threads) + " thread(s), 350 "
              "iterations; on a busy machine most of the wall time is waiting for a core. The first picture's "
              "time is from Start to iteration 0 in the run (its worker at nice 10): it grows with the machine's "
              "load."]
    md = "\n".join(lines)
    print()
    print(md)
    if a.out != "-":
        write_section(Path(a.out), md)
        print(f"wrote the Views and animation section of {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
