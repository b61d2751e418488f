#!/usr/bin/env python
"""What different GMMs make of one and the same trained VAE (the plain VAE after mutual update 1), as quoted in
BENCHMARKS.md ("Why the defaults are what they are"). Exploration aid, not part of the benchmark.

    python bench/quality_study.py train 0,1       # train update 1 per seed, save codes to /tmp/vq, compare GMMs
    python bench/quality_study.py floor           # EM on the saved means with covariance floors, and on samples

The numbers in BENCHMARKS.md came from the VAE training code before the speed work landed; rerunning gives
slightly different values (float rounding), not different conclusions.
"""
import json  # noqa: F401
import os
import time
import sys

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.makedirs("/tmp/vq", exist_ok=True)


def train(seeds: str, alpha: float = 1.0) -> None:
    import numpy as np, torch
    torch.set_num_threads(1)
    from vaegmm.model.config import preset
    from vaegmm.model.data import load_mnist
    from vaegmm.model.mutual import MutualLearner
    from vaegmm.model.gmm import GibbsGMM, EMGMM
    from vaegmm.model.metrics import clustering_accuracy as acc
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    for seed in [int(s) for s in seeds.split(",")]:
        cfg = preset("serket-classic").replace(seed=seed, iterations=1, codes="mean", vae__alpha=alpha)
        x, y = load_mnist(3000, tuple(range(10)), seed)
        t=time.time(); L = MutualLearner(cfg, x, y); L.run(); tv=time.time()-t
        import vaegmm.model.vae as V
        mu, logvar = V.encode_all(L.model, L.x)
        np.savez(f"/tmp/vq/codes_s{seed}_a{alpha}.npz", mu=mu, logvar=logvar, y=y)
        rng = np.random.default_rng(0)
        samp = mu + rng.standard_normal(mu.shape) * np.exp(0.5*logvar)
        active = (np.exp(logvar).mean(0) < 0.5).sum()
        out = {"seed": seed, "alpha": alpha, "vae_s": round(tv), "active_dims": int(active)}
        for name, z in (("mean", mu), ("sample", samp)):
            for cov in ("full", "diag"):
                res = []
                for r in range(10):
                    g = GaussianMixture(10, covariance_type=cov, random_state=r).fit(z)
                    res.append((g.score(z), acc(g.predict(z), y)))
                best = max(res)[1]
                out[f"{name}-em-{cov}"] = f"best-ll {best:.3f} | range {min(a for _,a in res):.3f}-{max(a for _,a in res):.3f}"
            km = KMeans(10, n_init=10, random_state=0).fit(z)
            out[f"{name}-kmeans"] = round(acc(km.labels_, y), 3)
            for init in ("random", "kmeans++"):
                rs = []
                for r in range(3):
                    g = GibbsGMM(10, init=init, random_state=r).fit(z)
                    rs.append((g.log_joint_, acc(g.labels_, y)))
                out[f"{name}-gibbs-{init}"] = f"best-lj {max(rs)[1]:.3f} | " + " ".join(f"{a:.3f}" for _, a in rs)
        print(json.dumps(out, indent=1), flush=True)


def floor() -> None:
    import numpy as np
    from sklearn.mixture import GaussianMixture
    from vaegmm.model.metrics import clustering_accuracy as acc
    for seed in (0, 1):
        d = np.load(f"/tmp/vq/codes_s{seed}_a1.0.npz"); mu, lv, y = d["mu"], d["logvar"], d["y"]
        print("seed", seed, "posterior var mean", np.exp(lv).mean(), "code var per dim", np.round(mu.var(0),2))
        for reg in (1e-6, 1e-2, 0.05, 0.1, 0.3):
            res = []
            for r in range(10):
                g = GaussianMixture(10, covariance_type="full", reg_covar=reg, random_state=r).fit(mu)
                res.append((g.score(mu), acc(g.predict(mu), y)))
            print(f"  mean reg {reg}: best-ll {max(res)[1]:.3f} range {min(a for _,a in res):.3f}-{max(a for _,a in res):.3f}", flush=True)
        rng = np.random.default_rng(0)
        for draw in range(3):
            s = mu + rng.standard_normal(mu.shape) * np.exp(0.5*lv)
            res = []
            for r in range(10):
                g = GaussianMixture(10, covariance_type="full", random_state=r).fit(s)
                res.append((g.score(s), acc(g.predict(s), y), acc(g.predict(mu), y)))
            b = max(res)
            print(f"  sample draw {draw}: best-ll {b[1]:.3f} (predict on means {b[2]:.3f}) range {min(a[1] for a in res):.3f}-{max(a[1] for a in res):.3f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 1.0)
    else:
        floor()
