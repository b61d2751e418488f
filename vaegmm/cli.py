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

from tqdm import tqdm

from vaegmm.core.threads import configure_torch_threads
from vaegmm.model.config import CODE_KINDS, DEVICES, GMM_BACKENDS, PRECISIONS, PRESETS, RunConfig, preset
from vaegmm.model.params import FIELDS
from vaegmm.sweeps.spec import MAX_RUNS, SweepError, SweepSpec, parse_seeds

# The modules that import torch, scikit-learn or pandas (2-3 s together) are imported by the commands that use
# them, so that ``python -m vaegmm --help`` answers in well under a second.


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, as argparse does, without the usage block
        self.exit(2, f"vaegmm: error: {message}\n")


def _digits(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"digits must be integers like 0,1,2, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m vaegmm", description="Serket VAE+GMM mutual learning on MNIST")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="train and write a Serket-layout run folder")
    r.add_argument("--preset", choices=sorted(PRESETS), help="start from a named preset")
    r.add_argument("--n", type=int, help="number of images (class-balanced)")
    r.add_argument("--digits", type=_digits, help="digits to include, e.g. 0,1,2 (default all)")
    r.add_argument("--classes", type=int, help="K, GMM classes (default: number of digits)")
    r.add_argument("--latent-dim", type=int, help="D, latent dimension")
    r.add_argument("--alpha", type=float, help="KL weight")
    r.add_argument("--iterations", type=int, help="mutual iterations")
    r.add_argument("--epochs", type=int, help="VAE epochs per iteration")
    r.add_argument("--batch-size", type=int, help="VAE mini-batch size")
    r.add_argument("--gmm", choices=list(GMM_BACKENDS),
                   help="GMM backend: collapsed (Serket's sampler), gibbs (blocked sampler) or em")
    r.add_argument("--z", choices=list(CODE_KINDS), help="codes sent to the GMM")
    r.add_argument("--no-feedback", action="store_true", help="keep the prior at N(0, I) (baseline)")
    r.add_argument("--seed", type=int, help="random seed")
    r.add_argument("--source", help="auto, bundled, openml or idx:<folder>")
    r.add_argument("--device", choices=list(DEVICES), help="torch device")
    r.add_argument("--precision", choices=list(PRECISIONS),
                   help="VAE matrix multiplies: fp32 (exact, the default), bf16 (mixed precision), auto (bf16 where native)")
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
    rep.add_argument("--metric", default="accuracy", choices=["accuracy", "nmi", "ari"])
    rep.add_argument("--csv", help="also write the per-run table to this CSV file")
    return p


def config_from_args(a: argparse.Namespace) -> RunConfig:
    cfg = preset(a.preset) if a.preset else RunConfig()
    ch = {}
    pairs = [("n", "data__n"), ("digits", "data__digits"), ("source", "data__source"),
             ("latent_dim", "vae__latent_dim"), ("alpha", "vae__alpha"), ("epochs", "vae__epochs"),
             ("batch_size", "vae__batch_size"), ("device", "vae__device"), ("precision", "vae__precision"),
             ("gmm", "gmm__backend"), ("classes", "gmm__n_classes"), ("iterations", "iterations"), ("z", "codes"),
             ("seed", "seed")]
    for arg, key in pairs:
        v = getattr(a, arg)
        if v is not None:
            ch[key] = v
    if a.digits is not None and a.classes is None:
        ch["gmm__n_classes"] = len(a.digits)
    if a.no_feedback:
        ch["feedback"] = False
    return cfg.replace(**ch).validate() if ch else cfg.validate()


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
    from vaegmm.model.vae import precision_note, resolve_device
    from vaegmm.runs.train import FAILED, FINISHED, STOPPED, train_run
    from vaegmm.sweeps.budget import limit_refusal
    from vaegmm.views.export import write_run

    try:
        cfg = config_from_args(args)
        note = precision_note(cfg.vae.precision, resolve_device(cfg.vae.device))
        images, labels = _load_data(cfg)
    except ValueError as e:
        print(f"vaegmm: error: {e}", file=sys.stderr)
        return 2
    too_big = limit_refusal(cfg.to_dict())  # only with $VAEGMM_MAX_RUN_MINUTES set (issue 18)
    if too_big:
        print(f"vaegmm: error: {too_big}", file=sys.stderr)
        return 2
    if note:
        print(f"vaegmm: warning: {note}", file=sys.stderr)
    bar = None if args.quiet else _ProgressBar(cfg)
    recorder = None if args.no_store else _recorder(args, cfg)
    try:
        trained = train_run(cfg, callbacks=[bar] if bar is not None else [], data=(images, labels),
                            on_result=None if recorder is None else lambda result, _s: recorder.iteration(result),
                            stop_on_interrupt=True)
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
    out = write_run(Path(args.out), cfg, trained.history, labels, status=trained.status)
    print_run(trained.history, trained.train_seconds, out, recorder)
    return 0 if trained.status == FINISHED else 130 if trained.status == STOPPED else 1


def _load_data(cfg: RunConfig):
    """The run's images and labels (ValueError when the source cannot deliver), torch set up for one run."""
    from vaegmm.runs.train import load_data

    configure_torch_threads(capacity=1)  # one run: all cores, or $VAEGMM_TORCH_THREADS
    return load_data(cfg)


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


def print_run(history, wall: float, out: Path, recorder=None) -> None:
    """The per-iteration table (accuracy, NMI, ARI, seconds of the VAE and GMM updates) and where it went."""
    print(f"{'iter':>4} {'accuracy':>9} {'NMI':>7} {'ARI':>7} {'VAE s':>7} {'GMM s':>7}")
    for r in history:
        print(f"{r.iteration:>4} {r.accuracy:>9.4f} {r.nmi:>7.4f} {r.ari:>7.4f} {r.seconds_vae:>7.2f} {r.seconds_gmm:>7.2f}")
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
                if args.grid:
                    raise SweepError("--resume NAME continues a stored sweep as it was: give no --grid with it")
                info = store.get_sweep(args.resume)
                if info is None:
                    raise SweepError(f"no sweep named {args.resume!r} in {store.path} to resume")
                spec, name = SweepSpec.from_dict(info["spec"]), args.resume
            else:
                seeds_text = ",".join(args.seeds)
                seeds = parse_seeds(int(seeds_text) if seeds_text.isdigit() else seeds_text, args.first_seed)
                spec = SweepSpec.from_grid(args.preset, _grid(args.grid), seeds, max_runs=args.max_runs)
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
    """The summary table of a sweep (per cell: seeds, mean ± std and 95 % CI of the final accuracy, NMI, ARI)
    and its paired comparisons, as text."""
    from vaegmm.sweeps.results import (cell_table, common_labels, compare_cells, default_comparisons, resolve_cell,
                                       sweep_results)

    info, runs, _ = sweep_results(store, name)
    spec = SweepSpec.from_dict(info["spec"])
    table = cell_table(spec, runs)
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    lines = [f"sweep {info['name']!r} ({info['status']}): {spec.describe()}",
             "runs: " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none yet"), ""]
    head = ["cell", "seeds", "accuracy", "95 % CI", "NMI", "ARI", "s / run"]
    rows = []

    def ms(m, r):
        n = r["n"]
        if n == 0:
            return "-"
        return f"{r[m + ' mean']:.3f}" + (f" ± {r[m + ' std']:.3f}" if n > 1 else "")

    for _, r in table.iterrows():
        ci = "-" if r["n"] < 2 else f"[{r['accuracy ci low']:.3f}, {r['accuracy ci high']:.3f}]"
        secs = "-" if r["n"] == 0 else f"{r['s / run']:.0f}" if r["s / run"] >= 10 else f"{r['s / run']:.1f}"
        rows.append([r["cell"], r["seeds done"] + (f" ({r['failed']} failed)" if r["failed"] else ""),
                     ms("accuracy", r), ci, ms("nmi", r), ms("ari", r), secs])
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
