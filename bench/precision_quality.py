"""Paired quality check of the mixed-precision VAE step (issue 17): the same runs in bf16 and in fp32.

For each preset and seed, the whole run (iteration 0 + all iterations) once with ``vae.precision="bf16"`` and once
with ``"fp32"`` (the exact mode), everything else equal; the final accuracy of each, and per preset the mean of each,
the mean paired difference (bf16 - fp32) and its 95 % t confidence interval. The pass rule of the issue: the bf16
mean at most 1 point below fp32's and the CI inside +-2 points.

    python bench/precision_quality.py --seeds 10 --jobs 2 --out bench/results/precision_quality.jsonl
    python bench/precision_quality.py --report bench/results/precision_quality.jsonl   # the table only

Each run is one worker process with one torch thread (``--jobs`` of them side by side); finished runs are appended
to ``--out`` as JSON lines, and runs already there are skipped, so an interrupted check resumes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = ("project-default", "serket-classic")
PRECISIONS = ("bf16", "fp32")


def run_one(preset_name: str, seed: int, precision: str) -> dict:
    """One whole run; its final accuracy and timings."""
    import torch

    torch.set_num_threads(1)
    from vaegmm.model.config import preset
    from vaegmm.model.data import load_mnist
    from vaegmm.model.mutual import MutualLearner

    cfg = preset(preset_name).replace(seed=seed, vae__precision=precision)
    images, labels = load_mnist(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
    w, c = time.perf_counter(), time.process_time()
    history = MutualLearner(cfg, images, labels).run()
    return {"preset": preset_name, "seed": seed, "precision": precision, "accuracy": float(history[-1].accuracy),
            "wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c,
            "seconds_vae": [h.seconds_vae for h in history[1:]], "seconds_gmm": [h.seconds_gmm for h in history]}


def load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(rows: list[dict]) -> str:
    """Markdown table: per preset, n pairs, mean accuracy of each precision, paired difference with its 95 % CI."""
    import numpy as np
    from scipy import stats

    lines = ["| preset | pairs | fp32 mean acc | bf16 mean acc | bf16 - fp32 (points) | 95 % CI (points) | "
             "median wall bf16 / fp32 (s, 1 thread) | pass |", "|---|---|---|---|---|---|---|---|"]
    for name in PRESETS:
        by = {(r["seed"], r["precision"]): r for r in rows if r["preset"] == name}
        seeds = sorted(s for s, p in by if p == "fp32" and (s, "bf16") in by)
        if len(seeds) < 2:
            continue
        a32 = np.array([by[(s, "fp32")]["accuracy"] for s in seeds]) * 100
        a16 = np.array([by[(s, "bf16")]["accuracy"] for s in seeds]) * 100
        diff = a16 - a32
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        lo, hi = diff.mean() - half, diff.mean() + half
        ok = a16.mean() >= a32.mean() - 1.0 and lo >= -2.0 and hi <= 2.0
        walls = [np.median([by[(s, p)]["wall_s"] for s in seeds]) for p in ("bf16", "fp32")]
        lines.append(f"| {name} | {len(seeds)} | {a32.mean():.2f} | {a16.mean():.2f} | {diff.mean():+.2f} | "
                     f"[{lo:+.2f}, {hi:+.2f}] | {walls[0]:.1f} / {walls[1]:.1f} | {'yes' if ok else 'NO'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "precision_quality.jsonl")
    ap.add_argument("--report", type=Path, help="print the table of an existing results file and stop")
    a = ap.parse_args(argv)
    if a.report:
        print(report(load(a.report)))
        return 0
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    done = {(r["preset"], r["seed"], r["precision"]) for r in load(a.out)}
    # seed-major order, the two precisions of a pair next to each other: a partial result is still paired
    todo = [(p, s, q) for s in range(a.first_seed, a.first_seed + a.seeds) for p in a.presets for q in PRECISIONS
            if (p, s, q) not in done]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(a.jobs) as pool:
        futures = [pool.submit(run_one, *job) for job in todo]
        for fut in as_completed(futures):
            row = fut.result()
            with a.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{row['preset']} seed {row['seed']} {row['precision']}: acc {row['accuracy']:.4f} "
                  f"wall {row['wall_s']:.1f} s", flush=True)
    print(report(load(a.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
