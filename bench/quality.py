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

Every finished run is appended as one JSON line to ``--results`` (so a long run can be followed, and an
interrupted one resumed with ``--resume``). Each run uses one torch thread; ``--jobs`` runs seeds side by side.
"""
from __future__ import annotations

import argparse
import hashlib
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

from vaegmm.config import RunConfig, preset  # noqa: E402

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


def config_key(cfg: dict, seed: int) -> str:
    return hashlib.sha1(json.dumps([cfg, seed], sort_keys=True).encode()).hexdigest()[:16]


def run_one(task: tuple) -> dict:
    """Run one config dict with one seed; return the per-iteration metrics as a JSON-able dict."""
    label, cfg_dict, seed = task
    import torch

    torch.set_num_threads(1)
    from vaegmm.data import load_mnist
    from vaegmm.mutual import MutualLearner

    cfg = RunConfig.from_dict(cfg_dict).replace(seed=seed).validate()
    images, labels = load_mnist(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
    t0 = time.perf_counter()
    history = MutualLearner(cfg, images, labels).run()
    return {
        "label": label, "seed": seed, "key": config_key(cfg_dict, seed), "config": cfg_dict,
        "accuracy": [r.accuracy for r in history], "nmi": [r.nmi for r in history], "ari": [r.ari for r in history],
        "seconds": time.perf_counter() - t0,
    }


def run_tasks(tasks: list, jobs: int, results_path: Path, done: dict) -> list[dict]:
    """Run the tasks not already in ``done`` (by key), ``jobs`` at a time; append each result to ``results_path``."""
    todo = [t for t in tasks if config_key(t[1], t[2]) not in done]
    out = [done[config_key(t[1], t[2])] for t in tasks if config_key(t[1], t[2]) in done]
    results_path.parent.mkdir(parents=True, exist_ok=True)

    def record(res: dict) -> None:
        out.append(res)
        with open(results_path, "a") as f:
            f.write(json.dumps(res) + "\n")
        acc = " ".join(f"{a:.3f}" for a in res["accuracy"])
        print(f"[{time.strftime('%H:%M:%S')}] {res['label']:<24} seed {res['seed']}: acc {acc} "
              f"({res['seconds']:.0f} s)", flush=True)

    if jobs <= 1 or len(todo) <= 1:
        for t in todo:
            record(run_one(t))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(jobs, len(todo))) as pool:
            for res in pool.imap_unordered(run_one, todo):
                record(res)
    return out


def load_results(path: Path) -> dict:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                res = json.loads(line)
                done[res["key"]] = res
    return done


# ------------------------------------------------------------------------------------------------ reporting
def _ms(values) -> str:
    import numpy as np

    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def summarise(results: list[dict], labels: list[str]) -> str:
    """Markdown: a summary of final values, then one per-iteration table per label."""
    by = {lab: sorted([r for r in results if r["label"] == lab], key=lambda r: r["seed"]) for lab in labels}
    lines = ["| variant | seeds | iterations | final accuracy | final NMI | final ARI | final accuracy per seed | s / run |",
             "|---|---|---|---|---|---|---|---|"]
    for lab in labels:
        rs = by[lab]
        if not rs:
            continue
        per_seed = ", ".join(f"{r['accuracy'][-1]:.3f}" for r in rs)
        secs = sum(r["seconds"] for r in rs) / len(rs)
        lines.append(f"| {VARIANTS.get(lab, lab)} | {len(rs)} | {len(rs[0]['accuracy']) - 1} | "
                     f"{_ms([r['accuracy'][-1] for r in rs])} | {_ms([r['nmi'][-1] for r in rs])} | "
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2 3 4; --quick: 0 1)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--explore", action="append", default=[], metavar="LABEL:CHANGES",
                   help="serket-classic with RunConfig.replace changes, e.g. 'm:codes=mean,vae__alpha=2'")
    p.add_argument("--quick", action="store_true", help="tiny sizes (100 images, 2 epochs, 2 iterations)")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side (one torch thread each)")
    p.add_argument("--results", type=Path, default=None, help="JSON lines, one per run (default under /tmp)")
    p.add_argument("--resume", action="store_true", help="reuse runs already in --results")
    p.add_argument("--markdown", type=Path, default=None,
                   help="file whose '## Quality' section is (re)written (default BENCHMARKS.md; not with --quick "
                        "or --explore unless given)")
    p.add_argument("--note", default="", help="text placed under the tables in the markdown section")
    p.add_argument("--note-file", type=Path, default=None, help="file whose text is placed under --note")
    p.add_argument("--summarise", type=Path, default=None, metavar="JSONL",
                   help="print the exploration table of a results file and exit")
    a = p.parse_args(argv)
    if a.summarise is not None:
        print(exploration_table(list(load_results(a.summarise).values())))
        return 0
    seeds = a.seeds if a.seeds is not None else ([0, 1] if a.quick else [0, 1, 2, 3, 4])
    quick = QUICK if a.quick else {}

    tasks, labels, configs = [], [], {}
    if a.explore:
        for spec in a.explore:
            label, _, changes = spec.partition(":")
            cfg = preset("serket-classic").replace(**parse_changes(changes), **quick).validate()
            labels.append(label)
            configs[label] = cfg
    else:
        for name in a.variants:
            cfg = variant_config(name).replace(**quick).validate()
            labels.append(name)
            configs[name] = cfg
    for label in labels:
        d = configs[label].to_dict()
        tasks += [(label, d, s) for s in seeds]

    results_path = a.results or Path(f"/tmp/vaegmm_quality/{'quick' if a.quick else 'full'}-{os.getpid()}.jsonl")
    done = load_results(results_path) if a.resume else {}
    t0 = time.perf_counter()
    results = run_tasks(tasks, a.jobs, results_path, done)
    wall = time.perf_counter() - t0
    table = summarise(results, labels)
    print()
    print(table)
    print(f"\n{len(tasks)} runs in {wall:.0f} s; results: {results_path}")

    md = a.markdown if a.markdown is not None else (None if (a.quick or a.explore) else ROOT / "BENCHMARKS.md")
    if md is not None:
        cmd = "python bench/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
        import torch

        body = [f"Made by `{cmd.strip()}` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} CPU cores, torch "
                f"{torch.__version__}, one torch thread per run, {a.jobs} run(s) side by side; {len(tasks)} runs, "
                f"{sum(r['seconds'] for r in results) / 60:.0f} min of run time, on a machine shared with other "
                f"jobs, so the seconds are not speed measurements). Accuracy is the Hungarian-matched clustering accuracy of the GMM's "
                f"classes; mean ± std (ddof=1) over seeds {', '.join(map(str, seeds))} (the seed picks the "
                f"image subset, the VAE's initial weights and the GMM's randomness). Iteration 0 is the "
                f"untrained encoder.", ""]
        body += [f"- {VARIANTS.get(lab, lab)}: {describe(configs[lab])}" for lab in labels]
        body += ["", table]
        if a.note:
            body += ["", a.note]
        if a.note_file is not None:
            body += ["", a.note_file.read_text().strip()]
        write_section(md, "## Quality\n\n" + "\n".join(body))
        print(f"wrote the Quality section of {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
