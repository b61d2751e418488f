#!/usr/bin/env python
"""Does our Serket sampler sample like Serket? Collapsed vs blocked Gibbs vs Serket's own ``gmm.train`` (issue 13).

The data: the codes the ``serket-classic`` preset sends to the GMM after its first VAE update (iteration 1), for
each seed, as the issue took them: with the preset's GMM at the time, the blocked sampler, at iteration 0. (The
encoder after update 1 is the same whichever GMM runs at iteration 0, but the codes are one sample of q(z|o) each,
and their noise comes from the generator the iteration-0 GMM has drawn from.) Made here with one VAE update per
seed, about 10 s of CPU, and cached in ``--codes-dir``. On each,
``--chains`` independent chains of :class:`vaegmm.model.gmm.CollapsedGibbsGMM` (Serket's sampler, backend
``collapsed``) and of :class:`vaegmm.model.gmm.GibbsGMM` (blocked, backend ``gibbs``), ``--sweeps`` sweeps from a random
start each, scored by Hungarian accuracy of the reported classes (the argmax of Pdz for the collapsed sampler).

With ``--serket-gmm PATH`` (a fetched copy of naka-lab/Serket's ``gmm/gmm.py``, kept outside the repository) it
also runs Serket's own ``gmm.train``, unchanged, on the first seed's codes (``--serket-chains``, about 3-5 min
each; results kept in ``--serket-results`` so that chains already run are reused), and, with ``--stepcheck``,
feeds Serket and ours the same random streams (Serket's ``np.random.randint`` start and ``random.random()``
uniforms) and compares their outputs ``Pdz`` and ``mu``.

    python bench/gibbs_match.py --serket-gmm /tmp/serket_scratch/serket_gmm.py --serket-chains 5 --stepcheck 3
    python bench/gibbs_match.py --seeds 0 --chains 4 --markdown -     # a quick look, nothing written
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import numpy as np  # noqa: E402

from markdown_section import write_section  # noqa: E402
from vaegmm.model.gmm import CollapsedGibbsGMM, GibbsGMM  # noqa: E402
from vaegmm.model.metrics import clustering_accuracy  # noqa: E402

K = 10
SECTION = "## Collapsed vs blocked Gibbs"


def iteration1_codes(seed: int, codes_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(codes (3000, 18) float32, labels (3000,))``: what the serket-classic preset's GMM sees at iteration 1."""
    path = codes_dir / f"seed{seed}.npz"
    if not path.exists():
        import torch

        from vaegmm.model.config import preset
        from vaegmm.model.data import load_mnist
        from vaegmm.model.mutual import MutualLearner

        torch.set_num_threads(1)
        cfg = preset("serket-classic").replace(seed=seed, gmm__backend="gibbs")  # as the issue took them
        images, labels = load_mnist(cfg.data.n, cfg.data.digits, seed, cfg.data.source)
        learner = MutualLearner(cfg, images, labels)
        learner.begin()
        learner.step()
        codes_dir.mkdir(parents=True, exist_ok=True)
        np.savez(path, codes=learner.history[1].codes, labels=labels)
        print(f"  seed {seed}: iteration-1 codes saved to {path}", flush=True)
    d = np.load(path)
    return d["codes"], d["labels"]


def run_ours(z, y, seed: int, chains: int, sweeps: int) -> dict:
    """Accuracy, classes left alive and CPU seconds of each chain of both samplers."""
    out = {}
    for name, make in (("collapsed", lambda rng: CollapsedGibbsGMM(K, n_sweeps=sweeps, random_state=rng)),
                       ("blocked", lambda rng: GibbsGMM(K, n_sweeps=sweeps, random_state=rng))):
        acc, alive, cpu = [], [], []
        for c in range(chains):
            g = make(np.random.default_rng([seed, c]))
            t = time.process_time()
            g.fit(z)
            cpu.append(time.process_time() - t)
            acc.append(clustering_accuracy(g.labels_, y))
            alive.append(int(len(np.unique(g.labels_))))
        out[name] = {"accuracy": acc, "alive": alive, "cpu": cpu}
    return out


def load_serket(path: Path):
    spec = importlib.util.spec_from_file_location("serket_gmm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def serket_chain(serket, z, y, chain: int, sweeps: int) -> dict:
    """One run of Serket's ``gmm.train`` as its GMM module calls it (float32 data, uniform ``bias_dz``)."""
    np.random.seed(chain)
    random.seed(chain)
    data = np.asarray(z, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        t, w = time.process_time(), time.perf_counter()
        pdz, _mu = serket.train(data, K, sweeps, tmp, np.ones((len(data), K)) / K, y, None)
        cpu, wall = time.process_time() - t, time.perf_counter() - w
        greedy = float(np.loadtxt(os.path.join(tmp, "acc.txt")))
    cls = pdz.argmax(axis=1)
    return {"chain": chain, "sweeps": sweeps, "hungarian": clustering_accuracy(cls, y), "greedy": greedy,
            "alive": int(len(np.unique(cls))), "cpu": cpu, "wall": wall}


def stepcheck(serket, z, y, chain: int, sweeps: int) -> dict:
    """Serket's ``gmm.train`` and ours from the same random streams: the largest differences of their outputs."""
    import vaegmm.model.gmm as gmm_module

    n = len(z)
    data = np.asarray(z, dtype=np.float32)
    np.random.seed(chain)
    random.seed(chain)
    with tempfile.TemporaryDirectory() as tmp:
        pdz, mu = serket.train(data, K, sweeps, tmp, np.ones((n, K)) / K, None, None)
    np.random.seed(chain)
    random.seed(chain)
    start = np.random.randint(K, size=n)
    uniforms = [np.array([random.random() for _ in range(n)]) for _ in range(sweeps)]

    class SerketStream:  # our fit asks for one uniform per point per sweep: hand it Serket's, in Serket's order
        def __init__(self):
            self.sweep = 0

        def random(self, size):
            self.sweep += 1
            return uniforms[self.sweep - 1]

    real = gmm_module._rng_of
    gmm_module._rng_of = lambda _state: SerketStream()
    try:
        g = CollapsedGibbsGMM(K, n_sweeps=sweeps).fit(data.astype(np.float64), init_labels=start)
    finally:
        gmm_module._rng_of = real
    return {"chain": chain, "sweeps": sweeps, "max_pdz_diff": float(np.abs(g.resp_ - pdz).max()),
            "max_mu_diff": float(np.abs(g.point_means_ - mu).max()),
            "same_classes": float((g.labels_ == pdz.argmax(axis=1)).mean()),
            "acc_serket": clustering_accuracy(pdz.argmax(axis=1), y), "acc_ours": clustering_accuracy(g.labels_, y)}


def ms(v) -> str:
    v = np.asarray(v, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def span(v) -> str:
    return f"{min(v):.3f}-{max(v):.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--chains", type=int, default=20, help="chains per seed and sampler (default 20)")
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--codes-dir", type=Path, default=Path("/tmp/vaegmm_codes"),
                   help="cache of the iteration-1 codes, seed<S>.npz (default /tmp/vaegmm_codes)")
    p.add_argument("--serket-gmm", type=Path, default=None,
                   help="path of Serket's gmm/gmm.py (a fetched copy outside the repository)")
    p.add_argument("--serket-chains", type=int, default=3, help="chains of Serket's gmm.train on the first seed")
    p.add_argument("--serket-results", type=Path, default=Path("/tmp/serket_scratch/serket_chains.jsonl"),
                   help="JSON lines of Serket's chains; chains already there are reused")
    p.add_argument("--stepcheck", type=int, default=0, metavar="SWEEPS",
                   help="with --serket-gmm: Serket and ours from the same random streams for SWEEPS sweeps "
                        "(first seed's codes)")
    p.add_argument("--stepcheck-streams", type=int, default=2, help="how many streams --stepcheck compares")
    p.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"),
                   help=f"file whose '{SECTION}' section is (re)written; '-' writes nothing")
    p.add_argument("--note-file", type=Path, default=None, help="text placed under the tables")
    a = p.parse_args(argv)
    command = "python bench/gibbs_match.py " + " ".join(argv if argv is not None else sys.argv[1:])

    data = {s: iteration1_codes(s, a.codes_dir) for s in a.seeds}
    ours = {}
    for s in a.seeds:
        ours[s] = run_ours(*data[s], s, a.chains, a.sweeps)
        print(f"seed {s}: collapsed {ms(ours[s]['collapsed']['accuracy'])} "
              f"({span(ours[s]['collapsed']['accuracy'])}), blocked {ms(ours[s]['blocked']['accuracy'])} "
              f"({span(ours[s]['blocked']['accuracy'])})", flush=True)

    serket_runs, checks = [], []
    first = a.seeds[0]
    if a.serket_gmm is not None:
        serket = load_serket(a.serket_gmm)
        z, y = data[first]
        key = f"seed{first}"
        done = []
        if a.serket_results.exists():
            done = [json.loads(line) for line in a.serket_results.read_text().splitlines() if line.strip()]
        earlier = [r for r in done if r.get("codes") == key]
        done = [r for r in earlier if r.get("kind", "chain") == "chain" and r["sweeps"] == a.sweeps]
        have = {r["chain"] for r in done}
        for chain in range(1, a.serket_chains + 1):
            if chain in have:
                continue
            r = dict(serket_chain(serket, z, y, chain, a.sweeps), codes=key)
            print(f"  Serket gmm.train chain {chain}: {r['hungarian']:.3f} ({r['cpu']:.0f} s CPU)", flush=True)
            a.serket_results.parent.mkdir(parents=True, exist_ok=True)
            with open(a.serket_results, "a") as f:
                f.write(json.dumps(r) + "\n")
            done.append(r)
        serket_runs = sorted([r for r in done if r["chain"] <= a.serket_chains], key=lambda r: r["chain"])
        for chain in range(101, 101 + a.stepcheck_streams) if a.stepcheck else ():
            old = [r for r in earlier if r.get("kind") == "stepcheck" and r["chain"] == chain
                   and r["sweeps"] == a.stepcheck]
            if old:
                checks.append(old[-1])
                continue
            checks.append(dict(stepcheck(serket, z, y, chain, a.stepcheck), codes=key, kind="stepcheck"))
            print(f"  same streams, chain {chain}: {checks[-1]}", flush=True)
            with open(a.serket_results, "a") as f:
                f.write(json.dumps(checks[-1]) + "\n")

    # ------------------------------------------------------------------------------------------ report
    from scipy import stats

    lines = [SECTION, "",
             f"Made by `{command.strip()}` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} CPU cores, shared). "
             f"Data: the {len(data[first][0])} codes (D = {data[first][0].shape[1]}) that the `serket-classic` preset "
             f"sends to its GMM at iteration 1 (after the first VAE update), per seed, as the issue took them (with the "
             f"preset's blocked GMM at iteration 0, whose draws decide the codes' sampling noise). Each chain: K = {K}, "
             f"{a.sweeps} sweeps from random labels. Accuracy: Hungarian matching of the reported classes to the "
             f"digits (for the collapsed sampler and Serket: argmax of Pdz); mean ± std (ddof=1) over chains, range; "
             f"\"alive\": classes still reported at the end (mean). CPU s: median per fit, one core.", "",
             "| seed | chains | collapsed (Serket's sampler) | range | alive | CPU s | blocked Gibbs | range | alive | CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in a.seeds:
        c, b = ours[s]["collapsed"], ours[s]["blocked"]
        lines.append(f"| {s} | {a.chains} | {ms(c['accuracy'])} | {span(c['accuracy'])} | {np.mean(c['alive']):.1f} | "
                     f"{np.median(c['cpu']):.2f} | {ms(b['accuracy'])} | {span(b['accuracy'])} | "
                     f"{np.mean(b['alive']):.1f} | {np.median(b['cpu']):.2f} |")
    allc = [x for s in a.seeds for x in ours[s]["collapsed"]["accuracy"]]
    allb = [x for s in a.seeds for x in ours[s]["blocked"]["accuracy"]]
    lines.append(f"| all | {a.chains * len(a.seeds)} | {ms(allc)} | {span(allc)} | | | {ms(allb)} | {span(allb)} | | |")
    if serket_runs:
        # every run of Serket's gmm.train is a chain of Serket's sampler: the same-stream runs count too
        acc = [r["hungarian"] for r in serket_runs] + [c["acc_serket"] for c in checks if c["sweeps"] == a.sweeps]
        ours0 = ours[first]["collapsed"]["accuracy"]
        lines += ["", f"Serket's own `gmm.train` (naka-lab/Serket `gmm/gmm.py`, run unchanged from a copy outside the "
                  f"repository; float32 data and uniform `bias_dz`, as its GMM module passes them) on seed {first}'s "
                  f"codes, chains seeded `np.random.seed(c); random.seed(c)`:", "",
                  "| chain | accuracy (Hungarian, argmax Pdz) | Serket's own greedy-swap accuracy | classes alive | CPU s |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['chain']} | {r['hungarian']:.3f} | {r['greedy']:.3f} | {r['alive']} | {r['cpu']:.0f} |"
                  for r in serket_runs]
        line = (f"\nSeed {first}: Serket {ms(acc)} ({len(acc)} chains: the {len(serket_runs)} above"
                f"{' and the same-stream runs below' if len(acc) > len(serket_runs) else ''}, {span(acc)}); ours (collapsed) "
                f"{ms(ours0)} ({len(ours0)} chains, {span(ours0)}); blocked {ms(ours[first]['blocked']['accuracy'])}.")
        if len(acc) > 1:
            t = stats.ttest_ind(acc, ours0, equal_var=False)
            u = stats.mannwhitneyu(acc, ours0)
            # how often would len(acc) of our chains, drawn at random, be as tight as Serket's or as far off?
            rng = np.random.default_rng(0)
            draws = np.array([rng.choice(ours0, len(acc), replace=False) for _ in range(10000)])
            tight = float(np.mean(draws.std(axis=1, ddof=1) <= np.std(acc, ddof=1)))
            off = float(np.mean(np.abs(draws.mean(axis=1) - np.mean(ours0)) >= abs(np.mean(acc) - np.mean(ours0))))
            line += (f" Serket vs collapsed: Welch t-test p = {t.pvalue:.2f}, Mann-Whitney p = {u.pvalue:.2f}; "
                     f"Serket's chains lie at percentiles "
                     f"{', '.join(f'{stats.percentileofscore(ours0, v):.0f}' for v in acc)} of ours. "
                     f"{len(acc)} of our {len(ours0)} chains drawn at random (10 000 draws) have a std as small as "
                     f"Serket's ({np.std(acc, ddof=1):.3f}) {100 * tight:.0f}% of the time, and a mean as far from "
                     f"ours as Serket's {100 * off:.0f}% of the time.")
        lines.append(line)
        lines.append(f"Serket's CPU per {a.sweeps}-sweep fit: median {np.median([r['cpu'] for r in serket_runs]):.0f} s "
                     f"(ours {np.median(ours[first]['collapsed']['cpu']):.2f} s: "
                     f"{np.median([r['cpu'] for r in serket_runs]) / np.median(ours[first]['collapsed']['cpu']):.0f}x).")
    if checks:
        lines += ["", f"Same random streams (Serket's `np.random.randint` start and `random.random()` uniforms fed to "
                  f"both), seed {first}'s codes, {a.stepcheck} sweeps:", "",
                  "| stream | max abs diff of Pdz | max abs diff of mu | same reported class | accuracy Serket / ours |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['chain']} | {c['max_pdz_diff']:.1e} | {c['max_mu_diff']:.1e} | {100 * c['same_classes']:.1f}% | "
                  f"{c['acc_serket']:.3f} / {c['acc_ours']:.3f} |" for c in checks]
    if a.note_file is not None:
        lines += ["", a.note_file.read_text().strip()]
    md = "\n".join(lines)
    print()
    print(md)
    if a.markdown != "-":
        write_section(Path(a.markdown), md)
        print(f"wrote the '{SECTION}' section of {a.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
