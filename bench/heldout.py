"""Held-out digits (issue 25): training vs held-out accuracy and NMI per preset, from the sweeps
``heldout-<preset>`` of a results store, written as the "## Held-out digits" section of BENCHMARKS.md.

Make the sweeps first (one per preset, each under the exclusive CPU lock), then the table::

    python -m vaegmm sweep --preset quick-demo --grid feedback=on --seeds 0-9 --jobs 2 \\
        --db bench/results/heldout.db --name heldout-quick-demo     # ... and the other presets
    python bench/heldout.py --db bench/results/heldout.db
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.markdown_section import write_section  # noqa: E402
from vaegmm.model.config import PRESETS  # noqa: E402
from vaegmm.store import RunStore  # noqa: E402
from vaegmm.sweeps.results import sweep_results  # noqa: E402
from vaegmm.sweeps.stats import paired, summarize  # noqa: E402


METHOD = """Every run sets aside the bundled images it does not train on (class-balanced: 200 per digit for the
3000-image presets, 300 for the 2000-image ones) and, after each iteration, recognises them as Serket's recognition
mode does: the trained encoder's means, the fitted GMM's most probable class (EM: its posterior; the samplers: the
Student-t posterior predictive times the class weight), scored with the class -> digit matching learned on the
training images (never re-matched on the held-out labels). Per preset: the final iteration over seeds 0-9 (mean
± std [95 % CI of the mean]); "training, recognised" is the training images recognised the same way (encoder
means, most probable class), the like-for-like baseline where the GMM clustered sampled codes; the differences are
paired over seeds (mean [95 % CI], points of accuracy). Runs: `python -m vaegmm sweep --preset P --grid
feedback=on --seeds 0-9 --jobs 2 --db {db} --name heldout-P` (`feedback=off` for no-feedback; one value fixes the
setting), one preset at a time under the exclusive CPU lock, then `python bench/heldout.py --db {db}`. CPU:
{cpu}, 2 runs at a time, one thread each (s / run: median wall seconds of a run)."""


READING = """Reading it: the model labels digits it never saw almost as well as the ones it trained on. The
like-for-like comparison is "held-out - recognised" (both are encoder means classified by the fitted GMM): {lo:+.1f}
to {hi:+.1f} points on average over the presets (95 % CIs from {ci_lo:+.1f} to {ci_hi:+.1f}), a small
generalisation gap. "held-out - training" mixes that gap with the noise of the codes the GMM clustered: every preset
here sends it one *sample* of q(z|o) (`codes = sample`, as Serket), and the training accuracy is the read-out of
those samples, while recognition reads the encoder's means. Where a sample is far from its mean the training
accuracy is the lower one: feedback-lesson (alpha = 8) ends with q(z|o)'s standard deviation at 0.82 against a
spread of the means of 0.92 (quick-demo: 0.26 against 1.46; the last iteration of seed 0, measured once), so its
held-out images score about 4 points above its training images and as high as its recognised training images."""


def preset_row(store, preset: str) -> tuple[list[str], object]:
    """One table row: final training / held-out accuracy and NMI (mean ± std, 95 % CI) over the sweep's seeds,
    the training images recognised like the held-out ones, and the paired differences; and the paired
    held-out - recognised comparison."""
    _, runs, its = sweep_results(store, f"heldout-{preset}")
    runs = runs[runs["status"] == "finished"].sort_values("seed")
    extra = store.iterations(runs["run_id"], extra=True).groupby("run_id").tail(1).set_index("run_id")["extra"]
    recognised = [extra[r].get("recognised_accuracy") for r in runs["run_id"]]

    def cell(values) -> str:
        s = summarize(values)
        return f"{s.mean:.3f} ± {s.std:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"

    def points(p) -> str:
        return f"{100 * p.mean_diff:+.1f} [{100 * p.ci_low:+.1f}, {100 * p.ci_high:+.1f}]"

    like_for_like = paired(runs["heldout_accuracy"], recognised)
    return [preset, f"{len(runs)} ({runs['seed'].min()}-{runs['seed'].max()})", cell(runs["accuracy"]),
            cell(recognised), cell(runs["heldout_accuracy"]),
            points(paired(runs["heldout_accuracy"], runs["accuracy"])), points(like_for_like), cell(runs["nmi"]),
            cell(runs["heldout_nmi"]), f"{runs['seconds'].median():.0f}"], like_for_like


def cpu_words() -> str:
    """This machine's CPU as /proc/cpuinfo names it (model name, family, model, cores)."""
    try:
        info = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        fields = {k.strip(): v for k, v in (line.split(":", 1) for line in info.splitlines() if ":" in line)}
        cores = Path("/proc/cpuinfo").read_text().count("processor\t:")
        return (f"{fields['model name'].strip()} (family {fields['cpu family'].strip()}, model "
                f"{fields['model'].strip()}), {cores} cores")
    except (OSError, KeyError):
        return "unknown CPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="bench/results/heldout.db")
    ap.add_argument("--write", default="BENCHMARKS.md", help="the file whose section is replaced ('' = print only)")
    a = ap.parse_args(argv)
    head = ["preset", "seeds", "training accuracy", "training, recognised", "held-out accuracy",
            "held-out - training (points)", "held-out - recognised (points)", "training NMI", "held-out NMI",
            "s / run"]
    with RunStore(a.db, readonly=True) as store:
        names = {s["name"] for s in store.list_sweeps()}
        rows, gaps = zip(*[preset_row(store, p) for p in PRESETS if f"heldout-{p}" in names])
    table = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    means = [100 * g.mean_diff for g in gaps]
    reading = READING.format(lo=min(means), hi=max(means), ci_lo=min(100 * g.ci_low for g in gaps),
                             ci_hi=max(100 * g.ci_high for g in gaps))
    md = "\n".join(["## Held-out digits", "", "<!-- written by bench/heldout.py -->", "", METHOD.format(
        cpu=cpu_words(), db=a.db), "", *table, "", reading])
    print(md)
    if a.write:
        write_section(Path(a.write), md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
