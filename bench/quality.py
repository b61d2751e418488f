#!/usr/bin/env python
"""Quality benchmark: clustering accuracy (Hungarian), NMI and ARI per mutual iteration, mean ± std over seeds.

Variants (the classic setting: 3000 images, D=18, K=10, 200 epochs, batch 500):

* ``default``     (a) the project's default mutual learning: ``RunConfig()``
* ``no-feedback`` (b) the same VAE and GMM, the prior stays N(0, I): ``RunConfig(feedback=False)``
* ``serket``      (c) Serket-faithful: the ``serket-classic`` preset (sampled codes, Serket's collapsed Gibbs
                  sampler from random labels each update)
* ``alpha0``      (d) the default with alpha = 0 (no KL term: an autoencoder-like VAE)

Usage::

    python bench/quality.py                       # 5 seeds x 4 variants, tables to stdout and BENCHMARKS.md
    python bench/quality.py --quick               # tiny sizes, a few seconds (the smoke test runs this)
    python bench/quality.py --explore "em10:codes=mean,gmm__backend=em,gmm__n_init=10" --seeds 0 1
        # exploration: the serket-classic preset with changes (RunConfig.replace keys), one JSON line per run

The variants (or the explored configs) are one axis, ``variant``, of a sweep run by the same engine as
``python -m vaegmm sweep`` and the dashboard's Sweeps page (``vaegmm.sweeps``): runs go to a local process pool
(``--jobs``) or Ray (``--ray``), every result goes into a SQLite store (``--db``, default
/tmp/vaegmm-bench/quality.db), and the tables are made from the store with ``vaegmm.sweeps.stats``. Runs already in the
store (same config and seed) are never trained again, so an interrupted benchmark simply continues when run
again. ``--results`` also writes one JSON line per run. Each run uses one torch thread.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One BLAS/OpenMP thread per run (set before numpy/torch load): runs side by side must not oversubscribe cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vaegmm.model.config import RunConfig, preset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_section import write_section  # noqa: E402

VARIANTS = {
    "default": "(a) project default mutual learning",
    "no-feedback": "(b) no feedback (prior stays N(0, I))",
    "serket": "(c) Serket-faithful (sampled codes, Serket's collapsed Gibbs)",
    "alpha0": "(d) alpha = 0",
}
QUICK = dict(data__n=100, vae__epochs=2, vae__batch_size=50, iterations=2, gmm__sweeps=10)


def variant_config(name: str) -> RunConfig:
    """The :class:`RunConfig` of a named variant (seed 0)."""
    if name == "default":
        return RunConfig()
    if name == "no-feedback":
        return RunConfig().replace(feedback=False)
    if name == "serket":
        return preset("serket-classic")
    if name == "alpha0":
        return RunConfig().replace(vae__alpha=0.0)
    raise ValueError(f"unknown variant {name!r}; choose from {sorted(VARIANTS)}")


def parse_changes(text: str) -> dict:
    """``"codes=mean,vae__alpha=2"`` -> ``{"codes": "mean", "vae__alpha": 2}`` (values parsed as JSON when they can be)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"expected key=value, got {part!r}")
        key, value = part.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def load_results(path: Path) -> dict:
    """Results of an older JSON-lines file (``--summarise``), by key."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                res = json.loads(line)
                done[res["key"]] = res
    return done


def flat_changes(base: RunConfig, target: RunConfig) -> dict:
    """The ``RunConfig.replace`` keys that turn ``base`` into ``target`` (seed excluded)."""
    a, b = base.to_dict(), target.to_dict()
    out = {}
    for part in ("data", "vae", "gmm"):
        out.update({f"{part}__{k}": v for k, v in b[part].items() if a[part][k] != v})
    out.update({k: v for k, v in b.items() if k not in ("data", "vae", "gmm", "seed") and a[k] != v})
    return out


def build_spec(labels: list, configs: dict, seeds: list, base: RunConfig, preset_name: str):
    """One axis, ``variant``, whose values are the labelled configs (as changes of ``base``)."""
    from vaegmm.sweeps.spec import Axis, AxisValue, SweepSpec

    values = [AxisValue(lab, json.loads(json.dumps(flat_changes(base, configs[lab])))) for lab in labels]
    spec = SweepSpec(base=base.to_dict(), axes=[Axis("variant", values)], seeds=list(seeds), preset=preset_name,
                     max_runs=max(500, len(labels) * len(seeds)))
    return spec.validate()


def results_from_store(store, name: str) -> list[dict]:
    """The sweep's finished runs as the dicts the tables use: label, seed, key, config, per-iteration accuracy,
    nmi, ari, seconds."""
    from vaegmm.store import run_key
    from vaegmm.sweeps.spec import parse_cell

    info = store.get_sweep(name)
    rows = [r for r in store.sweep_runs(info["id"]) if r["status"] == "finished"]
    its = store.iterations([r["run_id"] for r in rows])
    out = []
    for r in rows:
        run = store.get_run(r["run_id"])
        cur = its[its["run_id"] == r["run_id"]].sort_values("iteration")
        out.append({"label": parse_cell(r["cell"])["variant"], "seed": r["seed"],
                    "key": run_key(run["config"], r["seed"]), "config": run["config"],
                    "accuracy": cur["accuracy"].tolist(), "nmi": cur["nmi"].tolist(), "ari": cur["ari"].tolist(),
                    "seconds": r["seconds"], "run_id": r["run_id"]})
    return out


def run_variants(spec, name: str, db: Path, jobs: int, ray: str | None = None) -> tuple[list[dict], dict]:
    """Run the sweep through the engine (runs in the store are reused) and read its results back."""
    from vaegmm.sweeps.executors import make_executor
    from vaegmm.store import RunStore
    from vaegmm.sweeps.driver import run_sweep

    def show(ev):
        if ev.kind == "finished":
            print(f"[{time.strftime('%H:%M:%S')}] {ev.cell:<28} seed {ev.seed}: {ev.status} ({ev.seconds:.0f} s)"
                  + (f" {ev.message}" if ev.message and ev.status != "finished" else "")
                  + f"  [{ev.progress.done}/{ev.progress.total}]", flush=True)
        elif ev.kind == "reused":
            print(f"{ev.cell:<28} seed {ev.seed}: already in the store (run {ev.run_id})", flush=True)
        elif ev.kind == "worker_died":
            print(f"{ev.cell} seed {ev.seed}: worker died, retrying: {ev.message}", flush=True)

    with RunStore(db) as store:
        progress = run_sweep(store, spec, name, make_executor(jobs, ray), on_event=show)
        return results_from_store(store, name), {"failed": progress.failed, "reused": progress.reused}


# ------------------------------------------------------------------------------------------------ reporting
def _ms(values) -> str:
    from vaegmm.sweeps.stats import summarize

    s = summarize(values)
    return f"{s.mean:.3f} ± {0.0 if s.n < 2 else s.std:.3f}"


def _ci(values) -> str:
    from vaegmm.sweeps.stats import summarize

    return summarize(values).ci_text(3)


def summarise(results: list[dict], labels: list[str]) -> str:
    """Markdown: a summary of final values (mean ± std and the t-based 95 % CI over seeds), then one
    per-iteration table per label."""
    by = {lab: sorted([r for r in results if r["label"] == lab], key=lambda r: r["seed"]) for lab in labels}
    lines = ["| variant | seeds | iterations | final accuracy | 95 % CI | final NMI | final ARI | final accuracy per seed "
             "| s / run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for lab in labels:
        rs = by[lab]
        if not rs:
            continue
        per_seed = ", ".join(f"{r['accuracy'][-1]:.3f}" for r in rs)
        secs = sum(r["seconds"] for r in rs) / len(rs)
        lines.append(f"| {VARIANTS.get(lab, lab)} | {len(rs)} | {len(rs[0]['accuracy']) - 1} | "
                     f"{_ms([r['accuracy'][-1] for r in rs])} | {_ci([r['accuracy'][-1] for r in rs])} | "
                     f"{_ms([r['nmi'][-1] for r in rs])} | "
                     f"{_ms([r['ari'][-1] for r in rs])} | {per_seed} | {secs:.0f} |")
    for lab in labels:
        rs = by[lab]
        if not rs:
            continue
        lines += ["", f"**{VARIANTS.get(lab, lab)}**", "",
                  "| iteration | accuracy | NMI | ARI |", "|---|---|---|---|"]
        n_it = min(len(r["accuracy"]) for r in rs)
        for i in range(n_it):
            lines.append(f"| {i} | {_ms([r['accuracy'][i] for r in rs])} | {_ms([r['nmi'][i] for r in rs])} | "
                         f"{_ms([r['ari'][i] for r in rs])} |")
    return "\n".join(lines)


def exploration_table(results: list[dict]) -> str:
    """Markdown: one row per explored config, accuracy at iteration 5 and at the last iteration, per seed."""
    labels = list(dict.fromkeys(r["label"] for r in results))
    lines = ["| config | changes from serket-classic | accuracy at iteration 5 per seed | mean | final iteration | "
             "final accuracy per seed | mean |", "|---|---|---|---|---|---|---|"]
    base = json.loads(json.dumps(preset("serket-classic").to_dict()))
    for lab in labels:
        rs = sorted([r for r in results if r["label"] == lab], key=lambda r: r["seed"])
        changes = []
        for part in ("data", "vae", "gmm"):
            changes += [f"{k}={v}" for k, v in rs[0]["config"][part].items() if base[part][k] != v]
        changes += [f"{k}={v}" for k, v in rs[0]["config"].items()
                    if k not in ("data", "vae", "gmm", "seed") and base[k] != v]
        a5 = [r["accuracy"][min(5, len(r["accuracy"]) - 1)] for r in rs]
        af = [r["accuracy"][-1] for r in rs]
        per_seed5 = ", ".join(f"s{r['seed']}: {a:.3f}" for r, a in zip(rs, a5))
        lines.append(f"| {lab} | {', '.join(changes) or '(none)'} | {per_seed5} | "
                     f"{sum(a5) / len(a5):.3f} | {len(rs[0]['accuracy']) - 1} | "
                     f"{', '.join(f'{a:.3f}' for a in af)} | {sum(af) / len(af):.3f} |")
    return "\n".join(lines)


def describe(cfg: RunConfig) -> str:
    g = cfg.gmm
    if g.backend == "collapsed":
        gmm = f"Serket's collapsed Gibbs GMM ({g.sweeps} sweeps, init {g.init})"
    elif g.backend == "gibbs":
        gmm = f"blocked Gibbs GMM ({g.sweeps} sweeps, init {g.init}, {g.chains} chain(s))"
    else:
        gmm = f"EM GMM (best of {g.n_init} restart(s), reg_covar {g.reg_covar:g})"
    return (f"{cfg.data.n} images, D={cfg.vae.latent_dim}, K={g.n_classes}, {cfg.vae.epochs} epochs, batch "
            f"{cfg.vae.batch_size}, alpha={cfg.vae.alpha:g}, {cfg.iterations} iterations, codes={cfg.codes}, {gmm}, "
            f"warm_start={g.warm_start}, feedback={cfg.feedback}")


def paired_lines(results: list[dict], labels: list[str]) -> list[str]:
    """Each variant against the first one over their common seeds, in one sentence each."""
    from vaegmm.sweeps.stats import paired

    by = {lab: {r["seed"]: r["accuracy"][-1] for r in results if r["label"] == lab} for lab in labels}
    out = []
    for lab in labels[1:]:
        seeds = sorted(set(by[labels[0]]) & set(by[lab]))
        if seeds:
            p = paired([by[labels[0]][s] for s in seeds], [by[lab][s] for s in seeds], labels[0], lab, seeds=seeds)
            out.append(f"- {p.sentence()}")
    return out


def export_effect(path: Path, results: list[dict], on: str, off: str, sweep: str, db: Path, config: RunConfig,
                  command: str, note: str = "") -> dict:
    """The per-seed final metrics of variants ``on`` and ``off`` over their common seeds, as JSON the dashboard
    reads (:mod:`vaegmm.sweeps.measured`): the pages compute the comparison from these stored numbers."""
    by = {lab: {r["seed"]: r for r in results if r["label"] == lab} for lab in (on, off)}
    seeds = sorted(set(by[on]) & set(by[off]))
    if not seeds:
        raise SystemExit(f"--effect: no seed where both {on!r} and {off!r} finished")
    data = {
        "sweep": sweep, "store": str(db), "made": time.strftime("%Y-%m-%d"), "command": command, "note": note,
        "setting": describe(config), "on": on, "off": off, "seeds": seeds,
        "final": {lab: {m: [by[lab][s][m][-1] for s in seeds] for m in ("accuracy", "nmi", "ari")}
                  for lab in (on, off)},
        "curves": {lab: [by[lab][s]["accuracy"] for s in seeds] for lab in (on, off)},
        "run_ids": {lab: [by[lab][s]["run_id"] for s in seeds] for lab in (on, off)},
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2 3 4; --quick: 0 1)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--explore", action="append", default=[], metavar="LABEL:CHANGES",
                   help="the --base preset with RunConfig.replace changes, e.g. 'm:codes=mean,vae__alpha=2'")
    p.add_argument("--base", default="serket-classic", help="preset the --explore changes apply to")
    p.add_argument("--quick", action="store_true", help="tiny sizes (100 images, 2 epochs, 2 iterations)")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side (one torch thread each)")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="run on a Ray cluster (host:port or auto)")
    p.add_argument("--db", type=Path, default=Path("/tmp/vaegmm-bench/quality.db"),
                   help="results store (default /tmp/vaegmm-bench/quality.db); runs in it are not trained again")
    p.add_argument("--name", default=None, help="the sweep's name in the store (default from the mode)")
    p.add_argument("--results", type=Path, default=None, help="also write one JSON line per run here")
    p.add_argument("--markdown", type=Path, default=None,
                   help="file whose '## Quality' section is (re)written (default BENCHMARKS.md; not with --quick "
                        "or --explore unless given)")
    p.add_argument("--note", default="", help="text placed under the tables in the markdown section")
    p.add_argument("--export-effect", type=Path, default=None, metavar="JSON",
                   help="write the paired comparison of --effect's two variants (per-seed final metrics) to this "
                        "file, which the dashboard quotes (vaegmm/sweeps/measured_feedback.json)")
    p.add_argument("--effect", default="default,no-feedback", metavar="ON,OFF",
                   help="the two variants of --export-effect (default: default,no-feedback)")
    p.add_argument("--effect-note", default="", help="how the seeds were chosen, quoted with the effect")
    p.add_argument("--summarise", type=Path, default=None, metavar="JSONL",
                   help="print the exploration table of a results file and exit")
    a = p.parse_args(argv)
    if a.summarise is not None:
        print(exploration_table(list(load_results(a.summarise).values())))
        return 0
    seeds = a.seeds if a.seeds is not None else ([0, 1] if a.quick else [0, 1, 2, 3, 4])
    quick = QUICK if a.quick else {}

    labels, configs = [], {}
    if a.explore:
        base, base_name = preset(a.base), a.base
        for spec_text in a.explore:
            label, _, changes = spec_text.partition(":")
            label = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in label.strip()) or "config"
            cfg = preset(a.base).replace(**parse_changes(changes), **quick).validate()
            labels.append(label)
            configs[label] = cfg
    else:
        base, base_name = RunConfig(), "project-default"
        for name in a.variants:
            cfg = variant_config(name).replace(**quick).validate()
            labels.append(name)
            configs[name] = cfg
    spec = build_spec(labels, configs, seeds, base, base_name)
    name = a.name or ("explore-" + "-".join(labels) if a.explore else
                      ("quality-quick" if a.quick else "quality") + "-" + "-".join(labels) + f"-s{'.'.join(map(str, seeds))}")

    t0 = time.perf_counter()
    results, counts = run_variants(spec, name, a.db, a.jobs, a.ray)
    wall = time.perf_counter() - t0
    if a.results is not None:
        a.results.parent.mkdir(parents=True, exist_ok=True)
        with open(a.results, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    table = summarise(results, labels)
    comparisons = paired_lines(results, labels)
    print()
    print(table)
    if comparisons:
        print("\n" + "\n".join(comparisons))
    print(f"\n{spec.n_runs} runs ({counts['reused']} reused from the store, {counts['failed']} failed) in {wall:.0f} s; "
          f"store: {a.db}, sweep {name!r}" + (f"; results: {a.results}" if a.results else ""))

    if a.export_effect is not None:
        on, off = (x.strip() for x in a.effect.split(","))
        export_effect(a.export_effect, results, on, off, name, a.db, configs[on],
                      "python bench/quality.py " + " ".join(argv if argv is not None else sys.argv[1:]), a.effect_note)
        print(f"wrote {a.export_effect}")

    md = a.markdown if a.markdown is not None else (None if (a.quick or a.explore) else ROOT / "BENCHMARKS.md")
    if md is not None:
        cmd = "python bench/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
        import torch

        body = [f"Made by `{cmd.strip()}` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} CPU cores, torch "
                f"{torch.__version__}, one torch thread per run, {a.jobs} run(s) side by side, through the sweep "
                f"engine into the store {a.db} (sweep {name!r}); {spec.n_runs} runs, "
                f"{sum(r['seconds'] or 0 for r in results) / 60:.0f} min of run time, on a machine shared with other "
                f"jobs, so the seconds are not speed measurements). Accuracy is the Hungarian-matched clustering "
                f"accuracy of the GMM's classes; mean ± std (ddof=1) and the t-based 95 % CI over seeds "
                f"{', '.join(map(str, seeds))} (the seed picks the image subset, the VAE's initial weights and the "
                f"GMM's randomness). Iteration 0 is the untrained encoder.", ""]
        body += [f"- {VARIANTS.get(lab, lab)}: {describe(configs[lab])}" for lab in labels]
        body += ["", table]
        if comparisons:
            body += ["", "Paired over the same seeds (final accuracy):", ""] + comparisons
        if a.note:
            body += ["", a.note]
        write_section(md, "## Quality\n\n" + "\n".join(body))
        print(f"wrote the Quality section of {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
