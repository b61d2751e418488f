"""Speed benchmark of issue 17 (bf16 GEMMs, batched EM restarts, threads that follow the free cores), written into
the "## Speed (issue 17)" section of BENCHMARKS.md (``--out -``: print only).

    python bench/speed17.py                      # everything below, 3 repeats
    python bench/speed17.py --quick --out -      # tiny sizes, prints only (a smoke run)

What it measures (wall and CPU seconds; fresh processes, interleaved with their baseline, medians; the 1-minute
load average before and after, because the machine is shared):

* the GEMM rates (GFLOP/s, one thread) of every matrix multiply of one mini-batch step, float32 and bf16: the limits;
* one classic VAE update (3000 images, 200 epochs, batch 500; ``--epochs`` measured and scaled to 200) in a fresh
  process per variant: the plain fp32 autograd loop of ``bench/naive_vae.py`` with torch's defaults; the readable
  path (``VAE`` + ``negative_elbo`` + ``backward()`` + fused Adam) under ``torch.autocast(bf16)``; our step in fp32
  and in bf16; at 1 thread (passive wait) and 2 threads (bounded spin);
* the EM GMM fit (3000 x 18, K = 10, 10 restarts, floor 0.1) on the untrained codes: scikit-learn's restarts one
  after another against the batched EM, one thread, in this process;
* whole runs ``python -m vaegmm run`` of ``serket-classic`` (``--gmm em`` and its own collapsed sampler) and
  ``quick-demo``, today's code (``--base``, a checkout of the commit before issue 17) against this one;
* under load: a run next to a busy process (one core spinning), and two runs side by side at one thread each
  (the dashboard's default cap), before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

SECTION = "## Speed (issue 17)"
BASE_COMMIT = "b0d2e8f"  # the package just before issue 17: fp32 step, sklearn's restarts, OMP_WAIT_POLICY=PASSIVE


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def load1() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------------------------------------ GEMM rates
def gemm_rates(rounds: int = 5) -> list[tuple]:
    """(name, fp32 GFLOP/s, bf16 GFLOP/s) of each multiply of one step at batch 500, one thread, best of rounds."""
    import torch
    from speed import gemm_callable, step_gemms

    torch.set_num_threads(1)
    rows = []
    for name, m, k, n, how in step_gemms(500, 784, 128, 18):
        rate = {}
        for dtype in (torch.float32, torch.bfloat16):
            with torch.no_grad():
                f = gemm_callable(m, k, n, how)
                if dtype != torch.float32:  # the same call on bf16 copies of its operands
                    f = _as_dtype(m, k, n, how, dtype)
                reps = max(5, int(2e8 / (2 * m * k * n)))
                f()
                best = min(_time_calls(f, reps) for _ in range(rounds))
            rate[dtype] = 2 * m * k * n / best / 1e9
        rows.append((name, rate[torch.float32], rate[torch.bfloat16]))
    return rows


def _as_dtype(m, k, n, how, dtype):
    import torch

    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
    if how == "fwd":
        a, w, bias, out = r(m, k), r(n, k), r(n), torch.empty(m, n, dtype=dtype)
        return lambda: torch.addmm(bias, a, w.t(), out=out)
    if how == "wgrad":
        gt, a, out = r(k, m), r(k, n), torch.empty(m, n, dtype=dtype)
        return lambda: torch.addmm(out, gt.t(), a, beta=0, alpha=1 / k, out=out)
    a, w, out = r(m, k), r(k, n), torch.empty(m, n, dtype=dtype)
    return lambda: torch.mm(a, w, out=out)


def _time_calls(f, reps) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) / reps


# ------------------------------------------------------------------------------------------------ VAE update child
def vae_child(kind: str, epochs: int, images_path: str) -> dict:
    """One VAE update of ``epochs`` epochs (after a 1-epoch warm-up) in this fresh process: wall and CPU s."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.load(images_path))
    prior = torch.zeros(x.shape[0], 18)
    g = torch.Generator().manual_seed(0)
    if kind == "naive":  # pytorch/examples style, torch's defaults (threads, wait policy, float32)
        from naive_vae import NaiveVAE, train_naive

        torch.manual_seed(0)
        model = NaiveVAE()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        run = lambda e: train_naive(model, opt, x, prior, 1.0, e, 500, loader="loop")  # noqa: E731
    elif kind == "autocast":
        run = _readable_loop(x, prior, g)
    else:  # ours-fp32 / ours-bf16
        from vaegmm.model.vae import VAE, make_optimizer, train_epochs

        model = VAE(18, 128, generator=g)
        opt = make_optimizer(model, 1e-3)
        run = lambda e: train_epochs(model, opt, x, prior, 1.0, e, 500, g, precision=kind.split("-")[1])  # noqa
    run(1)
    w, c = time.perf_counter(), time.process_time()
    run(epochs)
    return {"wall": time.perf_counter() - w, "cpu": time.process_time() - c, "threads": torch.get_num_threads()}


def _readable_loop(x, prior, g):
    """The readable path: autograd through ``VAE`` and ``negative_elbo``, fused Adam, bf16 autocast."""
    import torch

    from vaegmm.model.vae import VAE, make_optimizer, negative_elbo

    model = VAE(18, 128, generator=g)
    opt = make_optimizer(model, 1e-3)

    def run(epochs):
        n = x.shape[0]
        for _ in range(epochs):
            perm = torch.randperm(n, generator=g)
            for s in range(0, n, 500):
                idx = perm[s:s + 500]
                xb, pb = x[idx], prior[idx]
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits, mu, logvar = model(xb, g)
                loss, _, _ = negative_elbo(logits.float(), xb, mu.float(), logvar.float(), pb, 1.0)
                opt.zero_grad(set_to_none=False)
                loss.backward()
                opt.step()
    return run


def child_env(threads: int | None, policy: str) -> dict:
    """Environment of a fresh process: ``policy`` "passive" (OMP_WAIT_POLICY=PASSIVE), "spin" (GOMP_SPINCOUNT=10000,
    this package's default) or "default" (torch's own: neither set)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                                             "VAEGMM_TORCH_THREADS", "OMP_NUM_THREADS")}
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif policy == "spin":
        env["GOMP_SPINCOUNT"] = "10000"
    if threads:
        env["OMP_NUM_THREADS"] = env["VAEGMM_TORCH_THREADS"] = str(threads)
    return env


def run_vae_child(kind, threads, policy, epochs, images_path) -> dict:
    cmd = [sys.executable, __file__, "--vae-child", kind, "--epochs", str(epochs), "--images", images_path]
    out = subprocess.run(cmd, env=child_env(threads, policy), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ whole runs
def whole_run(cwd: Path, args: list[str], env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of ``python -m vaegmm run ARGS`` in a fresh process from checkout ``cwd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "vaegmm", "run", *args, "--quiet", "--no-store", "--out", out]
        w = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env={**env, "PYTHONPATH": str(cwd)}, check=True, capture_output=True)
        wall = time.perf_counter() - w
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def base_checkout(path: Path) -> Path:
    """The package before issue 17 (``BASE_COMMIT``), exported once into ``path``."""
    if not (path / "vaegmm" / "__init__.py").exists():
        path.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASE_COMMIT], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive.stdout, check=True)
    return path


# ------------------------------------------------------------------------------------------------ EM
def em_fit_times(repeats: int, quick: bool) -> list[tuple]:
    """(codes, sklearn s, batched s, same kept restart) for the untrained codes of project-default, one thread."""
    import warnings

    import numpy as np
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    from vaegmm.model.config import preset
    from vaegmm.model.data import load_mnist
    from vaegmm.model.gmm import EMGMM
    from vaegmm.model.metrics import clustering_accuracy
    from vaegmm.model.mutual import MutualLearner

    cfg = preset("project-default").replace(data__n=300 if quick else 3000)
    images, labels = load_mnist(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
    codes, _ = MutualLearner(cfg, images, labels)._codes()
    z = codes.astype(np.float64)
    rows, t_sk, t_ours, same = [], [], [], []
    for r in range(repeats):
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = time.perf_counter()
            gm = GaussianMixture(10, covariance_type="full", n_init=10, reg_covar=0.1, max_iter=200,
                                 random_state=r).fit(z)
            t_sk.append(time.perf_counter() - w)
        w = time.perf_counter()
        ours = EMGMM(10, n_init=10, reg_covar=0.1, random_state=r).fit(z)
        t_ours.append(time.perf_counter() - w)
        same.append(clustering_accuracy(gm.predict(z), ours.labels_) == 1.0)
    rows.append((f"untrained codes, {len(z)} x {z.shape[1]}", med(t_sk), med(t_ours), f"{sum(same)}/{len(same)}"))
    return rows


RUNS = [("serket-classic --gmm em", ["--preset", "serket-classic", "--gmm", "em"]),
        ("serket-classic (collapsed)", ["--preset", "serket-classic"]),
        ("quick-demo", ["--preset", "quick-demo"])]
VAE_VARIANTS = [("naive", None, "default", "plain fp32 autograd loop, torch's defaults"),
                ("autocast", 1, "passive", "readable path, bf16 autocast"),
                ("ours-fp32", 1, "passive", "our step, fp32"),
                ("ours-bf16", 1, "passive", "our step, bf16"),
                ("autocast", 2, "spin", "readable path, bf16 autocast"),
                ("ours-fp32", 2, "spin", "our step, fp32"),
                ("ours-bf16", 2, "spin", "our step, bf16")]


def whole_runs(base: Path, repeats: int, quick: bool) -> list[tuple]:
    """Per whole run: (name, before wall, before CPU, after wall, after CPU), medians, interleaved."""
    extra = ["--n", "300", "--epochs", "2", "--iterations", "1"] if quick else []
    res = {}
    for _ in range(repeats):
        for name, args in RUNS:
            for side, cwd in (("before", base), ("after", ROOT)) if base is not None else (("after", ROOT),):
                res.setdefault((name, side), []).append(whole_run(cwd, args + extra, child_env(None, "default")))
                print(f"{name} {side}: wall {res[(name, side)][-1][0]:.1f} s, CPU {res[(name, side)][-1][1]:.1f} s "
                      f"(load {load1():.1f})", flush=True)
    return [(name, *[med([r[i] for r in res.get((name, side), [])]) for side in ("before", "after") for i in (0, 1)])
            for name, _ in RUNS]


def under_load(base: Path, quick: bool) -> list[tuple]:
    """(case, before wall, after wall): serket-classic --gmm em next to a busy process; two side by side."""
    args = ["--preset", "serket-classic", "--gmm", "em"] + (["--n", "300", "--epochs", "2", "--iterations", "1"]
                                                          if quick else [])
    rows = []
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        walls = [whole_run(cwd, args, child_env(None, "default"))[0] for cwd in (base, ROOT)]
        rows.append(("next to a busy process (one core taken)", *walls))
    finally:
        busy.kill()
        busy.wait()
    walls = []
    for cwd in (base, ROOT):
        env = child_env(1, "default")  # the dashboard's default cap (2 runs on 2 cores): one thread each
        t = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "vaegmm", "run", *args, "--quiet", "--no-store", "--out",
                                   tempfile.mkdtemp()], cwd=cwd, env={**env, "PYTHONPATH": str(cwd)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        for p in procs:
            p.wait()
        walls.append(time.perf_counter() - t)
    rows.append(("two runs side by side, 1 thread each (wall of both)", *walls))
    return rows


def table(header, rows) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def render(command, loads, gemms, vae, em, runs, load_rows) -> str:
    f = lambda v: f"{v:.2f}"  # noqa: E731
    out = [SECTION, "", f"Made by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
           f"{os.cpu_count()} cores; 1-minute load average {loads[0]:.1f} before, {loads[1]:.1f} after (the machine "
           "is shared: wall times include other processes' time; compare the interleaved pairs).", ""]
    if gemms:
        out += ["**The limits: GEMM rates** of each multiply of one mini-batch step (batch 500), one thread:", "",
                table(["multiply", "fp32 GFLOP/s", "bf16 GFLOP/s", "bf16 / fp32"],
                      [(n, f"{a:.0f}", f"{b:.0f}", f"{b / a:.1f}x") for n, a, b in gemms]), ""]
    if vae:
        base = next(w for (k, t, p, _), (w, _c) in vae.items() if k == "naive")
        out += ["**One classic VAE update** (3000 images, 200 epochs, batch 500), fresh process per variant, "
                "scaled from the measured epochs, medians:", "",
                table(["variant", "threads", "wait policy", "wall s", "CPU s", "vs naive"],
                      [(label, t or "torch default", p, f(w), f(c), f"{base / w:.1f}x")
                       for (k, t, p, label), (w, c) in vae.items()]), ""]
    if em:
        out += ["**EM GMM fit** (K = 10, 10 restarts, covariance floor 0.1, one thread):", "",
                table(["codes", "scikit-learn, restarts one by one (s)", "batched EM (s)", "same kept partition"],
                      [(n, f(a), f(b), s) for n, a, b, s in em]), ""]
    if runs:
        out += [f"**Whole runs** `python -m vaegmm run` (fresh processes, before = commit {BASE_COMMIT}, interleaved, "
                "medians):", "",
                table(["run", "before wall s", "before CPU s", "after wall s", "after CPU s", "speed-up (wall)"],
                      [(n, f(a), f(b), f(c), f(d), f"{a / c:.1f}x") for n, a, b, c, d in runs]), ""]
    if load_rows:
        out += ["**Under load** (serket-classic --gmm em):", "",
                table(["case", "before wall s", "after wall s"], [(n, f(a), f(b)) for n, a, b in load_rows]), ""]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--run-repeats", type=int, default=2, help="repeats of each whole run")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of each VAE-update measurement (scaled to 200)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["gemm", "vae", "em", "runs", "load", "before"])
    ap.add_argument("--base", type=Path, default=Path(tempfile.gettempdir()) / "vaegmm-before-issue17")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="markdown file to update, or - to print")
    ap.add_argument("--vae-child", help=argparse.SUPPRESS)
    ap.add_argument("--images", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.vae_child:
        print(json.dumps(vae_child(a.vae_child, a.epochs, a.images)))
        return 0
    command = "python bench/speed17.py " + " ".join(argv if argv is not None else sys.argv[1:])
    loads = [load1()]
    gemms = [] if "gemm" in a.skip else gemm_rates(2 if a.quick else 5)
    vae = {}
    if "vae" not in a.skip:
        import numpy as np

        from vaegmm.model.data import load_mnist

        images = tempfile.NamedTemporaryFile(suffix=".npy", delete=False).name
        np.save(images, load_mnist(300 if a.quick else 3000, seed=0)[0])
        epochs = 2 if a.quick else a.epochs
        times = {}
        for _ in range(a.repeats):
            for kind, t, pol, label in VAE_VARIANTS:
                r = run_vae_child(kind, t, pol, epochs, images)
                times.setdefault((kind, t, pol, label), []).append((r["wall"] * 200 / epochs, r["cpu"] * 200 / epochs))
        vae = {key: (med([w for w, _ in v]), med([c for _, c in v])) for key, v in times.items()}
        os.unlink(images)
    em = [] if "em" in a.skip else em_fit_times(a.repeats, a.quick)
    base = base_checkout(a.base) if not {"runs", "load"} <= set(a.skip) and "before" not in a.skip else None
    runs = [] if "runs" in a.skip else whole_runs(base, 1 if a.quick else a.run_repeats, a.quick)
    load_rows = [] if "load" in a.skip else under_load(base, a.quick)
    loads.append(load1())
    text = render(command.strip(), loads, gemms, vae, em, runs, load_rows)
    print(text)
    if a.out != "-":
        path = Path(a.out)
        old = path.read_text() if path.exists() else ""
        if SECTION in old:  # replace this section only, up to the next "## " heading
            head, rest = old.split(SECTION, 1)
            nxt = rest.find("\n## ")
            old = head + (rest[nxt + 1:] if nxt >= 0 else "")
            old = old.rstrip("\n") + "\n\n" if old.strip() else ""
            path.write_text(old + text if nxt < 0 else head + text + "\n" + rest[nxt + 1:])
        else:
            path.write_text(old.rstrip("\n") + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
