"""``python -m vaegmm run|sweep|report ...``: the dashboard's run headless, parameter sweeps, and their reports.

* ``run``: one run with a progress bar; writes a Serket-layout folder and records the run in the results store
  (``--no-store`` to skip).
* ``sweep``: a grid of settings x seeds in parallel (a local process pool, or Ray with ``--ray``), every result
  in the store; ``--resume NAME`` trains only what is missing.
* ``report [NAME]``: the summary of a stored sweep with paired comparisons (without NAME: the list of sweeps).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from tqdm import tqdm

from vaegmm.core.threads import configure_torch_threads
from vaegmm.model.config import DEVICES, PRESETS, RunConfig, preset
from vaegmm.model.params import FIELDS, Field, apply_settings, expected, parse_value
from vaegmm.sweeps.spec import MAX_RUNS, SweepError, SweepSpec, parse_seeds

# The modules that import torch, scikit-learn or pandas (2-3 s together) are imported by the commands that use
# them, so that ``python -m vaegmm --help`` answers in well under a second.


REPORT_METRICS = ("accuracy", "nmi", "ari", "heldout_accuracy", "heldout_nmi")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, as argparse does, without the usage block
        self.exit(2, f"vaegmm: error: {message}\n")


# A run's settings are the dashboard's (vaegmm.model.params.FIELDS: the link's names, e.g. --latent, --k); the
# flags the CLI had before under other names stay as second names of the same settings.
FLAG_ALIASES = {"k": "--classes", "latent": "--latent-dim", "batch": "--batch-size", "codes": "--z"}


def _setting_type(f: Field):
    """argparse's ``type`` for field ``f``: the link's parser, with its limits and its message."""
    def parse(text: str):
        try:
            return parse_value(f, text)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"expected {expected(f)}, got {text!r}") from None
    return parse


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of :data:`~vaegmm.model.params.FIELDS` (``--n``, ``--digits``, ``--k``/``--classes``,
    ``--latent``/``--latent-dim``, ...; ``--no-feedback`` = ``--feedback off``), each default None: not given."""
    for key, f in FIELDS.items():
        metavar = "{" + ",".join(f.choices) + "}" if f.kind == "choice" else ("on|off" if f.kind == "bool" else None)
        text = f"{f.label}: {f.help}" if f.help else f.label
        parser.add_argument(f"--{key}", *([FLAG_ALIASES[key]] if key in FLAG_ALIASES else []), dest=key,
                            type=_setting_type(f), metavar=metavar, help=text.replace("%", "%%"))
    parser.add_argument("--no-feedback", dest="feedback", action="store_const", const=False,
                        help="the same as --feedback off: the prior stays N(0, I) (the baseline)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m vaegmm", description="Serket VAE+GMM mutual learning on MNIST")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="train and write a Serket-layout run folder")
    r.add_argument("--preset", choices=sorted(PRESETS), help="start from a named preset")
    add_setting_flags(r)
    r.add_argument("--source", help="auto, bundled, openml, idx:<folder> (MNIST IDX files), serket:<folder> (a "
                                    "Serket tutorial folder: data.txt, category.txt) or upload:<id>")
    r.add_argument("--device", choices=list(DEVICES), help="torch device")
    r.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--db", help="results store (default $VAEGMM_DB or ~/.cache/vaegmm/runs.db)")
    r.add_argument("--no-store", action="store_true", help="do not record the run in the results store")

    w = sub.add_parser("sweep", help="a grid of settings x seeds, in parallel, every result in the results store",
                       description="Axis names and values are the dashboard's URL parameters: "
                                   + ", ".join(k for k in FIELDS if k != "seed")
                                   + ". An axis with one value fixes that setting (--grid epochs=50).")
    w.add_argument("--preset", default="project-default", choices=sorted(PRESETS), help="base settings")
    w.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                   help="an axis and its values, e.g. --grid alpha=0.5,1,2 (repeat for more axes)")
    w.add_argument("--source", help="the data of every run (default the preset's): as run's --source, e.g. "
                                    "serket:<folder>")
    w.add_argument("--seeds", nargs="+", default=["5"], metavar="SEEDS",
                   help="a count (5: seeds 0-4, from --first-seed), a range (100-109) or a list (3,7,11 or 3 7 11)")
    w.add_argument("--first-seed", type=int, default=0, help="first seed when --seeds is a count")
    w.add_argument("--jobs", type=int, default=None,
                   help="runs at once (default: the cores; with --ray: the cluster's CPUs)")
    w.add_argument("--db", help="results store (default $VAEGMM_DB or ~/.cache/vaegmm/runs.db)")
    w.add_argument("--name", help="the sweep's name in the store (default: its axes and the time)")
    w.add_argument("--resume", metavar="NAME", help="continue a stored sweep: train only the runs not finished")
    w.add_argument("--retry-failed", action="store_true", help="with --resume: train failed runs again too")
    w.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on a Ray cluster: host:port as 'ray start --head' prints it, or 'auto' "
                        "(default $VAEGMM_RAY_ADDRESS; without either, the local process pool)")
    w.add_argument("--gpus-per-run", type=float, default=0.0, help="with --ray: GPUs each run asks for")
    w.add_argument("--max-runs", type=int, default=MAX_RUNS, help=f"refuse larger sweeps (default {MAX_RUNS})")
    w.add_argument("--quiet", action="store_true", help="no progress bar")

    rep = sub.add_parser("report", help="summary and paired comparisons of a stored sweep")
    rep.add_argument("name", nargs="?", help="the sweep (without it: list the stored sweeps)")
    rep.add_argument("--db", help="results store (default $VAEGMM_DB or ~/.cache/vaegmm/runs.db)")
    rep.add_argument("--compare", nargs=2, metavar=("CELL_A", "CELL_B"),
                     help="compare two cells over their common seeds, e.g. 'feedback=on alpha=1' 'feedback=off alpha=1'")
    rep.add_argument("--metric", default="accuracy", choices=list(REPORT_METRICS),
                     help="the metric of the paired comparisons; heldout_accuracy / heldout_nmi: on the images "
                          "each run set aside (which setting generalises)")
    rep.add_argument("--csv", help="also write the per-run table to this CSV file")
    return p


def config_from_args(a: argparse.Namespace) -> RunConfig:
    """The run's config: the preset (or the classic defaults), the settings given (``--digits`` without ``--k``
    sets K to the number of digits, as in a link), ``--source`` and ``--device``; validated."""
    cfg = preset(a.preset) if a.preset else RunConfig()
    changes = {key: getattr(a, key) for key in FIELDS if getattr(a, key) is not None}
    if "digits" in changes and "k" not in changes:
        changes["k"] = len(changes["digits"])
    cfg = apply_settings(cfg, changes)
    extra = {path: getattr(a, arg) for arg, path in (("source", "data__source"), ("device", "vae__device"))
             if getattr(a, arg) is not None}
    return (cfg.replace(**extra) if extra else cfg).validate()


def _error(message) -> int:
    print(f"vaegmm: error: {str(message).strip().splitlines()[0] if str(message).strip() else message}",
          file=sys.stderr)
    return 2


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sweep":
        return sweep_main(args)
    if args.command == "report":
        return report_main(args)
    return run_main(args)


def _open_store(path, note: bool = True):
    """The results store for ``run``; on a problem, a one-line warning and None (the run goes on)."""
    from vaegmm.store import RunStore, StoreError

    try:
        return RunStore(path)
    except StoreError as e:
        if note:
            print(f"vaegmm: warning: the run is not recorded: {e}", file=sys.stderr)
        return None


def run_main(args) -> int:
    """``python -m vaegmm run``: train one run with :func:`~vaegmm.runs.train.train_run`, record it, write the
    Serket-layout folder and print the per-iteration table. Exit 0 finished, 130 interrupted, 1 failed, 2 bad
    arguments or data."""
    from vaegmm.model.data import heldout_summary
    from vaegmm.model.vae import precision_note, resolve_device
    from vaegmm.runs.ask import heldout_words
    from vaegmm.runs.state import FAILED, FINISHED, STOPPED
    from vaegmm.runs.train import train_run
    from vaegmm.sweeps.budget import limit_refusal
    from vaegmm.views.export import write_run

    try:
        cfg = config_from_args(args)
        note = precision_note(cfg.vae.precision, resolve_device(cfg.vae.device))
        split = _load_data(cfg)
        images, labels = split.images, split.labels
    except ValueError as e:
        print(f"vaegmm: error: {e}", file=sys.stderr)
        return 2
    too_big = limit_refusal(cfg.to_dict())  # only with $VAEGMM_MAX_RUN_MINUTES set (issue 18)
    if too_big:
        print(f"vaegmm: error: {too_big}", file=sys.stderr)
        return 2
    if note:
        print(f"vaegmm: warning: {note}", file=sys.stderr)
    heldout = heldout_summary(split.heldout, split.no_heldout)
    if split.heldout is None:  # said once, before training
        print(f"vaegmm: note: {heldout_words(heldout)}; only the training images are scored", file=sys.stderr)
    bar = None if args.quiet else _ProgressBar(cfg)
    recorder = None if args.no_store else _recorder(args, cfg)
    if recorder is not None:
        recorder.heldout(heldout)
    try:
        trained = train_run(cfg, callbacks=[bar] if bar is not None else [], data=(images, labels),
                            on_result=None if recorder is None else lambda result, _s: recorder.iteration(result),
                            stop_on_interrupt=True, heldout=split.heldout)
    finally:
        if bar is not None:
            bar.close()
    message = ""
    if trained.status == STOPPED:
        message = "interrupted (Ctrl-C)"
        print("\ninterrupted: writing the finished iterations", file=sys.stderr)
    elif trained.status == FAILED:
        message = f"{type(trained.error).__name__}: {trained.error}"
        print(f"vaegmm: error: the run failed: {message}", file=sys.stderr)
    if recorder is not None:
        _end_recording(recorder, trained.status, message, trained.train_seconds)
    if trained.status == FAILED and not trained.history:
        return 1
    out = write_run(Path(args.out), cfg, trained.history, labels, status=trained.status,
                    heldout_labels=None if split.heldout is None else split.heldout.labels)
    print_run(trained.history, trained.train_seconds, out, recorder, heldout)
    return 0 if trained.status == FINISHED else 130 if trained.status == STOPPED else 1


def _load_data(cfg: RunConfig):
    """The run's images, labels and held-out set (:class:`~vaegmm.model.data.DataSplit`; ValueError when the
    source cannot deliver), torch set up for one run."""
    from vaegmm.runs.train import load_data_split

    configure_torch_threads(capacity=1)  # one run: all cores, or $VAEGMM_TORCH_THREADS
    return load_data_split(cfg)


class _ProgressBar:
    """A tqdm bar over the run's epochs, fed with the learner's ProgressEvents (on stderr)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.bar = tqdm(total=cfg.iterations * cfg.vae.epochs, unit="epoch", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, ev) -> None:
        if ev.phase == "vae":
            self.bar.update(1)
            self.bar.set_description(f"iteration {ev.iteration}/{ev.iterations}")
            self.bar.set_postfix(recon=f"{ev.recon:.1f}", kl=f"{ev.kl:.2f}")

    def close(self) -> None:
        self.bar.close()


def _recorder(args, cfg: RunConfig):
    """A :class:`~vaegmm.runs.library.RunRecorder` of this run in the results store, its row begun; None (and
    a one-line warning) when the store cannot take it. The run's files are the ``--out`` folder."""
    from vaegmm.runs.library import RunRecorder

    store = _open_store(args.db)
    if store is None:
        return None
    recorder = RunRecorder(store, cfg, "cli", label=f"python -m vaegmm run --out {args.out}",
                           preset=args.preset or "", export_dir=str(Path(args.out).resolve()))
    recorder.begin()
    if recorder.run_id is None:
        print(f"vaegmm: warning: the run is not recorded: {recorder.error}", file=sys.stderr)
        store.close()
        return None
    return recorder


def _end_recording(recorder, status: str, message: str, seconds: float) -> None:
    recorder.end(status, message, seconds=seconds)
    if recorder.error:  # the store is a record; the run went on
        print(f"vaegmm: warning: {recorder.error}", file=sys.stderr)
    recorder.store.close()


def _number(x, width: int) -> str:
    """``x`` to 4 decimals in ``width`` columns, or ``-`` (no labels, no held-out set)."""
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.4f}"


def print_run(history, wall: float, out: Path, recorder=None, heldout: Optional[dict] = None) -> None:
    """The per-iteration table (accuracy, NMI, ARI on the training images; accuracy and NMI on the held-out
    images, matched by the training matching; seconds of the VAE and GMM updates) and where it went.
    ``heldout``: :func:`~vaegmm.model.data.heldout_summary` (its line is printed when there is a held-out set)."""
    from vaegmm.runs.ask import heldout_words

    print(f"{'iter':>4} {'accuracy':>9} {'NMI':>7} {'ARI':>7} {'held-out acc':>12} {'held-out NMI':>12} "
          f"{'VAE s':>7} {'GMM s':>7}")
    for r in history:
        print(f"{r.iteration:>4} {_number(r.accuracy, 9)} {_number(r.nmi, 7)} {_number(r.ari, 7)} "
              f"{_number(r.heldout_accuracy, 12)} {_number(r.heldout_nmi, 12)} {r.seconds_vae:>7.2f} "
              f"{r.seconds_gmm:>7.2f}")
    if heldout and heldout.get("images"):
        print(heldout_words(heldout))
    if history and history[-1].accuracy is None:
        print("no labels: accuracy, NMI and ARI cannot be computed")
    stored = f"; store: run {recorder.run_id} in {recorder.store.path}" if recorder is not None else ""
    print(f"wall time {wall:.1f} s; run folder: {out}" + stored)


# ---------------------------------------------------------------------------------------------- sweep
def _grid(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--grid expects NAME=V1,V2 (e.g. alpha=0.5,1,2), got {item!r}")
        out.append((key.strip(), values))
    return out


def sweep_main(args) -> int:
    from vaegmm.store import RunStore, StoreError
    from vaegmm.sweeps.driver import default_sweep_name, run_sweep
    from vaegmm.sweeps.executors import ExecutorError, make_executor

    try:
        if args.jobs is not None and args.jobs < 1:
            raise SweepError(f"--jobs must be >= 1, got {args.jobs}")
        store = RunStore(args.db)
        try:
            if args.resume:
                if args.grid or args.source:
                    raise SweepError("--resume NAME continues a stored sweep as it was: give no --grid or --source "
                                     "with it")
                info = store.get_sweep(args.resume)
                if info is None:
                    raise SweepError(f"no sweep named {args.resume!r} in {store.path} to resume")
                spec, name = SweepSpec.from_dict(info["spec"]), args.resume
            else:
                seeds_text = ",".join(args.seeds)
                seeds = parse_seeds(int(seeds_text) if seeds_text.isdigit() else seeds_text, args.first_seed)
                base = preset(args.preset).replace(data__source=args.source).validate() if args.source else None
                spec = SweepSpec.from_grid(args.preset, _grid(args.grid), seeds, max_runs=args.max_runs, base=base)
                name = args.name or default_sweep_name(spec)
            executor = make_executor(args.jobs, args.ray, args.gpus_per_run)
        except BaseException:
            store.close()
            raise
    except (SweepError, StoreError, ExecutorError, ValueError) as e:
        return _error(e)

    print(f"sweep {name!r}: {spec.describe()}; {executor.describe()}; store {store.path}", file=sys.stderr)
    bar, report = None, [0]
    if not args.quiet:
        bar = tqdm(total=spec.n_runs, unit="run", file=sys.stderr, dynamic_ncols=True, desc=name)

    def on_event(ev):
        p = ev.progress
        if bar is not None:
            if bar.n != p.done:
                bar.update(p.done - bar.n)
            bar.set_postfix(running=p.running, failed=p.failed)
        if ev.kind == "worker_died" or (ev.kind == "finished" and ev.status == "failed"):
            text = f"run {ev.run_id} ({ev.cell}, seed {ev.seed}): " + (
                f"worker died, retrying once: {ev.message}" if ev.kind == "worker_died" else f"failed: {ev.message}")
            (bar.write if bar is not None else lambda t: print(t, file=sys.stderr))(text)

    code = 0
    try:
        run_sweep(store, spec, name, executor, on_event=on_event, retry_failed=args.retry_failed)
    except KeyboardInterrupt:
        code = 130
        print(f"\nstopped: the finished runs are stored; continue with: python -m vaegmm sweep --resume {name}"
              + (f" --db {args.db}" if args.db else ""), file=sys.stderr)
    except (SweepError, StoreError, ExecutorError) as e:
        code = _error(e)
    finally:
        if bar is not None:
            bar.close()
    try:
        if code != 2:
            print(format_report(store, name))
    finally:
        store.close()
    return code


def format_report(store, name: str, compare=None, metric: str = "accuracy") -> str:
    """The summary table of a sweep (per cell: seeds, mean ± std and 95 % CI of the final accuracy, NMI, ARI,
    and the same of the held-out accuracy and NMI: on the images each run set aside) and its paired comparisons
    of ``metric``, as text."""
    from vaegmm.sweeps.results import (cell_table, common_labels, compare_cells, default_comparisons, resolve_cell,
                                       sweep_results)

    info, runs, _ = sweep_results(store, name)
    spec = SweepSpec.from_dict(info["spec"])
    table = cell_table(spec, runs)
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    lines = [f"sweep {info['name']!r} ({info['status']}): {spec.describe()}",
             "runs: " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none yet"), ""]
    head = ["cell", "seeds", "accuracy", "95 % CI", "NMI", "ARI", "held-out acc", "95 % CI", "held-out NMI",
            "s / run"]
    rows = []

    def ms(m, r):
        mean, std = r[m + " mean"], r[m + " std"]
        if r["n"] == 0 or not np.isfinite(mean):
            return "-"
        return f"{mean:.3f}" + (f" ± {std:.3f}" if np.isfinite(std) else "")

    def ci(m, r):
        lo, hi = r[m + " ci low"], r[m + " ci high"]
        return "-" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:.3f}, {hi:.3f}]"

    for _, r in table.iterrows():
        secs = "-" if r["n"] == 0 else f"{r['s / run']:.0f}" if r["s / run"] >= 10 else f"{r['s / run']:.1f}"
        rows.append([r["cell"], r["seeds done"] + (f" ({r['failed']} failed)" if r["failed"] else ""),
                     ms("accuracy", r), ci("accuracy", r), ms("nmi", r), ms("ari", r), ms("heldout_accuracy", r),
                     ci("heldout_accuracy", r), ms("heldout_nmi", r), secs])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    failed = runs[runs["status"] == "failed"] if len(runs) else runs
    for _, r in failed.head(5).iterrows():
        lines.append(f"failed: {r['cell']} seed {r['seed']}: {r['message']}")
    pairs = ([(resolve_cell(spec, compare[0]), resolve_cell(spec, compare[1]))] if compare
             else default_comparisons(spec))
    if pairs:
        lines += ["", f"paired comparisons ({metric} after the last iteration, same seeds):"]
        for a, b in pairs:
            context = common_labels(a, b)
            lines.append("- " + (f"at {context}: " if context else "")
                         + compare_cells(spec, runs, a.name, b.name, metric).sentence())
    return "\n".join(lines)


def report_main(args) -> int:
    from vaegmm.store import RunStore, StoreError
    from vaegmm.sweeps.results import sweep_results

    try:
        with RunStore(args.db, readonly=True) as store:
            if not args.name:
                sweeps = store.list_sweeps()
                if not sweeps:
                    print(f"no sweeps in {store.path}")
                for s in sweeps:
                    n = len(store.sweep_runs(s["id"]))
                    print(f"{s['name']}  ({s['status']}, {n} runs stored, "
                          f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(s['created']))})")
                return 0
            text = format_report(store, args.name, tuple(args.compare) if args.compare else None, args.metric)
            if args.csv:
                _, runs, _ = sweep_results(store, args.name)
                runs.to_csv(args.csv, index=False)
    except (SweepError, StoreError, OSError) as e:
        return _error(e)
    print(text)
    return 0
