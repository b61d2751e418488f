"""Are runs deterministic on this machine? (issue 18: the reuse key, vaegmm/runs/reuse.py)

Trains the same settings and seed with 1 and 2 torch threads and with precision fp32 and auto, in this process
(``train_run``), and prints the accuracies and a SHA-256 of the last iteration's codes. Measured on the AMD EPYC
(AVX2 only, 2 cores) of issue 18: every line of a preset identical (bit-identical codes), so the key leaves the
thread count out and uses the resolved precision (on a CPU with native bf16, ``auto`` is bf16 and differs from
fp32 by design: the lines compare 1 and 2 threads at one precision). ``--full`` also trains Serket-classic and
project-default at full size (3000 images, batch 500, 2 epochs, 1 iteration).

    python bench/determinism.py [--full]
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package
from vaegmm.model.config import preset  # noqa: E402
from vaegmm.runs.train import train_run  # noqa: E402


def one(cfg, threads: int) -> dict:
    out = train_run(cfg, threads=threads)
    last = out.history[-1]
    return {"accuracy": [round(r.accuracy, 6) for r in out.history],
            "codes_sha256": hashlib.sha256(last.codes.tobytes()).hexdigest()[:12]}


def main(argv: list[str]) -> int:
    cases = [(name, preset(name).replace(data__n=300, vae__epochs=ep, iterations=2), combos)
             for name, ep in (("quick-demo", 5), ("serket-classic", 3))
             for combos in [((1, "fp32"), (2, "fp32"), (1, "auto"), (2, "auto"))]]
    if "--full" in argv:
        cases += [(name, preset(name).replace(vae__epochs=2, iterations=1), ((1, "fp32"), (2, "fp32")))
                  for name in ("serket-classic", "project-default")]
    for name, cfg, combos in cases:
        seen: dict[str, set] = {}  # per precision: what 1 and 2 threads gave (the reuse key leaves threads out)
        for threads, precision in combos:
            r = one(cfg.replace(vae__precision=precision), threads)
            seen.setdefault(precision, set()).add(json.dumps(r, sort_keys=True))
            print(json.dumps({"preset": name, "n": cfg.data.n, "threads": threads, "precision": precision, **r}),
                  flush=True)
        for precision, results in seen.items():
            print(f"{name}, {precision}: {'identical' if len(results) == 1 else 'DIFFERENT'} on 1 and 2 threads",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
