"""Speed benchmark (issue 4): the classic setting, measured in one process, printed as a table and written into the
"## Speed" section of BENCHMARKS.md (the other sections are left as they are). Issue 17's measurements (bf16 vs fp32
GEMM rates, the VAE update per precision and thread/wait policy in fresh processes, batched EM, whole runs before and
after, under load) are ``bench/speed17.py``, section "## Speed (issue 17)"; the paired quality check of the bf16 path
is ``bench/precision_quality.py``.

    python bench/speed.py                   # full run: 3000 images, D=18, K=10, alpha=1, 200 epochs, batch 500
    python bench/speed.py --quick --out -   # tiny sizes, prints only (the smoke test runs this)

What it measures (wall seconds, median of ``--repeats``; CPU seconds of this process alongside, because the
machine is shared and wall time includes the time other processes held the cores):

* our VAE update (``vaegmm.model.vae.train_epochs``, 200 epochs) and, interleaved with it, the naive reference update
  of ``bench/naive_vae.py`` (pytorch/examples style) with a ``DataLoader`` and with a plain Python loop;
* the matmul limit: the float32 GEMM rate of every matrix multiply of one mini-batch step, each timed at its own
  shape and transposition as the step calls it, plus a large square GEMM for the peak; the exact FLOPs of one
  VAE update; the fastest possible update at those rates; ours as a percentage of it;
* the whole classic run (``MutualLearner.run()``: iteration 0 + 5 iterations);
* GMM updates on the codes of that run's last iteration, written into their own "## GMM speed" section:
  CollapsedGibbsGMM (Serket's sampler, 100 sweeps), GibbsGMM (blocked, 100 sweeps), EMGMM (scikit-learn), the
  plain per-point sampler of ``tests/gibbs_reference.py`` timed for a few sweeps and scaled to 100, optionally
  Serket's own ``gmm.train`` (``--serket-gmm``), and the collapsed sampler's one-time costs in a fresh process
  (numba's import and loading the cached compiled loop; compiling it where no cache can be written).

    python bench/speed.py --gmm-only        # only the "## GMM speed" section, on the iteration-1 codes of the
                                            # serket-classic preset (one VAE update, ~10 s), not the 30-min run

``--snapshots-only`` (issue 11) measures only the cost of the live snapshots and writes its own "## Live snapshots"
section: the classic VAE update with and without a :class:`vaegmm.runs.snapshots.SnapshotTaker` (every 0.5 s it
encodes all 3000 images and sends codes and projection through a pipe, as a training worker does), interleaved in
this process, CPU seconds; and how many snapshots a second that gives.

    python bench/speed.py --snapshots-only                 # classic, 3 repeats of each, into BENCHMARKS.md
    python bench/speed.py --snapshots-only --quick --out -  # smoke test
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "tests")]  # tests/gibbs_reference.py: Serket's sampler re-typed

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gibbs_reference import collapsed_gibbs, collapsed_gibbs_numpy  # noqa: E402
from markdown_section import write_section  # noqa: E402
from naive_vae import NaiveVAE, train_naive  # noqa: E402
from vaegmm.model.config import serket_classic  # noqa: E402
from vaegmm.model.data import load_mnist  # noqa: E402
from vaegmm.model.gmm import EMGMM, CollapsedGibbsGMM, GibbsGMM  # noqa: E402
from vaegmm.model.mutual import MutualLearner  # noqa: E402
from vaegmm.model.vae import VAE, make_optimizer, train_epochs  # noqa: E402

TARGETS = {"vae_vs_naive": 2.0, "pct_of_limit": 60.0, "whole_run_s": 30.0, "collapsed_s": 2.0}
GMM_SECTION = "## GMM speed"


# ------------------------------------------------------------------------------------------------ timing helpers
def timed(fn):
    """(wall s, CPU s of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# ------------------------------------------------------------------------------------------------ FLOPs and GEMMs
def step_gemms(b: int, p: int, h: int, d: int):
    """Every matrix multiply of one mini-batch step of ``vaegmm.model.vae._Step`` as (name, M, K, N, how): forward
    ``addmm`` with bias, weight gradients ``addmm(beta=0, out=grad)`` of a transposed operand, input gradients
    ``mm``. The first layer has no input gradient."""
    return [
        ("fwd enc_hidden x@W1^T", b, p, h, "fwd"),
        ("fwd enc_head h1@W2^T", b, h, 2 * d, "fwd"),
        ("fwd dec_hidden z@W3^T", b, d, h, "fwd"),
        ("fwd dec_out h2@W4^T", b, h, p, "fwd"),
        ("dW dec_out g^T@h2", p, b, h, "wgrad"),
        ("dX dec_out g@W4", b, p, h, "xgrad"),
        ("dW dec_hidden dh2^T@z", h, b, d, "wgrad"),
        ("dX dec_hidden dh2@W3", b, h, d, "xgrad"),
        ("dW enc_head de^T@h1", 2 * d, b, h, "wgrad"),
        ("dX enc_head de@W2", b, 2 * d, h, "xgrad"),
        ("dW enc_hidden dh1^T@x", h, b, p, "wgrad"),
    ]


def update_flops(n: int, epochs: int, batch: int, p: int, h: int, d: int) -> int:
    """FLOPs (2 per multiply-add) of the Linear layers, forward and backward, of every mini-batch of one update."""
    total = 0
    for start in range(0, n, batch):
        b = min(batch, n - start)
        total += sum(2 * m * k * nn for _, m, k, nn, _ in step_gemms(b, p, h, d))
    return total * epochs


def macs_per_image(d: int, h: int, p: int):
    """Multiply-adds per image per epoch by kind: forward, weight gradients, input gradients."""
    out = {"forward": 0, "weight gradients": 0, "input gradients": 0}
    names = {"fwd": "forward", "wgrad": "weight gradients", "xgrad": "input gradients"}
    for _, m, k, n, how in step_gemms(1, p, h, d):  # every GEMM is linear in the batch size
        out[names[how]] += m * k * n
    out["total"] = sum(out.values())
    return list(out.items())


def gemm_callable(m: int, k: int, n: int, how: str):
    """The multiply as the training step issues it, on random float32 operands: returns a no-argument callable."""
    g = torch.Generator().manual_seed(0)
    if how == "fwd":  # out (m, n) = bias + A (m, k) @ W^T, W (n, k)
        a, w, bias, out = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g), torch.randn(n), torch.empty(m, n)
        return lambda: torch.addmm(bias, a, w.t(), out=out)
    if how == "wgrad":  # out (m, n) = G^T @ A / B, G (k, m), A (k, n)
        gg, a, out = torch.randn(k, m, generator=g), torch.randn(k, n, generator=g), torch.empty(m, n)
        return lambda: torch.addmm(out, gg.t(), a, beta=0, alpha=1.0 / k, out=out)
    a, w, out = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g), torch.empty(m, n)  # xgrad
    return lambda: torch.mm(a, w, out=out)


def measure_gemms(b, p, h, d, rounds: int, min_seconds: float):
    """Median seconds per call of each step GEMM and of a large square one, interleaved over ``rounds``."""
    shapes = step_gemms(b, p, h, d)
    sq = 2048 if min_seconds >= 0.05 else 256
    calls = [gemm_callable(m, k, n, how) for _, m, k, n, how in shapes] + [gemm_callable(sq, sq, sq, "xgrad")]
    flops = [2 * m * k * n for _, m, k, n, _ in shapes] + [2 * sq ** 3]
    reps = []
    for f, fl in zip(calls, flops):  # warm up and size the repetitions to about min_seconds each
        f()
        t = time.perf_counter()
        f()
        reps.append(max(1, int(min_seconds / max(time.perf_counter() - t, 1e-6))))
    times = [[] for _ in calls]
    cpu = [[] for _ in calls]
    for _ in range(rounds):
        for i, f in enumerate(calls):
            t, c = time.perf_counter(), time.process_time()
            for _ in range(reps[i]):
                f()
            times[i].append((time.perf_counter() - t) / reps[i])
            cpu[i].append((time.process_time() - c) / reps[i])
    return shapes, flops, [med(t) for t in times], [med(c) for c in cpu], sq


# ------------------------------------------------------------------------------------------------ the runs
def make_ours(x, prior, cfg, seed):
    def run():
        g = torch.Generator().manual_seed(seed)
        model = VAE(cfg.vae.latent_dim, cfg.vae.hidden, generator=g)
        opt = make_optimizer(model, cfg.vae.lr)
        train_epochs(model, opt, x, prior, cfg.vae.alpha, cfg.vae.epochs, cfg.vae.batch_size, g)
    return run


def make_naive(x, prior, cfg, seed, loader):
    def run():
        torch.manual_seed(seed)
        model = NaiveVAE(cfg.vae.latent_dim, cfg.vae.hidden)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.vae.lr)
        train_naive(model, opt, x, prior, cfg.vae.alpha, cfg.vae.epochs, cfg.vae.batch_size, loader)
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="repeats of every timing (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the whole benchmark")
    ap.add_argument("--ref-sweeps", type=int, default=2, help="sweeps of the per-point Gibbs reference (scaled to 100)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test): 300 images, 2 epochs, 1 iteration")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"),
                    help="markdown file whose '## Speed' section is (re)written; '-' writes nothing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thread-check", type=int, default=10, metavar="EPOCHS",
                    help="also time our VAE update for EPOCHS epochs (scaled to the full update) at 1 and 2 threads, "
                         "with OpenMP's default and passive wait policy, each in a fresh process; 0 skips it")
    ap.add_argument("--gmm-only", action="store_true",
                    help="only the GMM timings ('## GMM speed'), on the serket-classic preset's iteration-1 codes")
    ap.add_argument("--serket-gmm", type=Path, default=None,
                    help="also time Serket's own gmm.train from this copy of naka-lab/Serket's gmm/gmm.py")
    ap.add_argument("--vae-only", type=int, default=0, metavar="EPOCHS", help=argparse.SUPPRESS)  # thread-check child
    ap.add_argument("--snapshots-only", action="store_true",
                    help="only the live-snapshot overhead (issue 11), into its own '## Live snapshots' section")
    ap.add_argument("--snapshot-every", type=float, default=None, help="seconds between snapshots (default: the "
                    "dashboard's, vaegmm.runs.snapshots.DEFAULT_EVERY)")
    a = ap.parse_args(argv)
    if a.vae_only:
        return vae_only(a)
    if a.snapshots_only:
        return snapshot_overhead(a, argv)
    torch.set_num_threads(a.threads)
    try:  # numpy's BLAS (GMMs, PCA) at the same thread count
        from threadpoolctl import threadpool_limits
        threadpool_limits(a.threads)
    except ImportError:  # pragma: no cover
        pass
    command = "python bench/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if a.gmm_only:
        return gmm_only(a, command)

    cfg = serket_classic().replace(seed=a.seed)
    ref_points = None
    if a.quick:
        cfg = cfg.replace(data__n=300, vae__epochs=2, iterations=1, gmm__sweeps=5)
        ref_points = 30
    v, n = cfg.vae, cfg.data.n
    d, h, p = v.latent_dim, v.hidden, 784
    images, labels = load_mnist(n, cfg.data.digits, cfg.seed, cfg.data.source)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    prior = torch.zeros(n, d)
    print(f"speed benchmark: N={n} D={d} K={cfg.gmm.n_classes} alpha={v.alpha} epochs={v.epochs} "
          f"batch={v.batch_size} iterations={cfg.iterations}; torch {torch.__version__}, {a.threads} thread(s), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)

    # --- 1. VAE update: ours and the naive reference, interleaved (after one short warm-up of each)
    warm = cfg.replace(vae__epochs=1)
    for fn in (make_ours(x, prior, warm, a.seed), make_naive(x, prior, warm, a.seed, "dataloader"),
               make_naive(x, prior, warm, a.seed, "loop")):
        fn()
    runs = {"ours": make_ours(x, prior, cfg, a.seed),
            "naive (DataLoader)": make_naive(x, prior, cfg, a.seed, "dataloader"),
            "naive (Python loop)": make_naive(x, prior, cfg, a.seed, "loop")}
    vae = {k: ([], []) for k in runs}
    for r in range(a.repeats):
        for name, fn in runs.items():
            w, c = timed(fn)
            vae[name][0].append(w)
            vae[name][1].append(c)
            print(f"  repeat {r + 1}: VAE update {name}: {w:.2f} s wall, {c:.2f} s CPU", flush=True)

    # --- 2. matmul limit
    b = min(v.batch_size, n)
    shapes, flops, per_call, per_call_cpu, sq = measure_gemms(b, p, h, d, rounds=max(3, a.repeats), min_seconds=0.01 if a.quick else 0.1)
    batches = [min(v.batch_size, n - s) for s in range(0, n, v.batch_size)]
    assert all(bb == b for bb in batches) or a.quick, "the limit assumes equal mini-batches"
    steps = len(batches) * v.epochs
    total_flops = update_flops(n, v.epochs, v.batch_size, p, h, d)
    limit_s = sum(per_call[:-1]) * steps  # every GEMM of every step at its own measured rate
    step_rate = sum(flops[:-1]) / sum(per_call[:-1]) / 1e9
    peak_rate = flops[-1] / per_call[-1] / 1e9
    peak_s = total_flops / (peak_rate * 1e9)
    # the same from CPU seconds (what the cores could do, without the time other processes held them)
    limit_c = sum(per_call_cpu[:-1]) * steps
    step_rate_c = sum(flops[:-1]) / sum(per_call_cpu[:-1]) / 1e9
    peak_rate_c = flops[-1] / per_call_cpu[-1] / 1e9
    peak_c = total_flops / (flops[-1] / per_call_cpu[-1])

    # --- 3. whole classic run (its last codes feed the GMM timings)
    whole, whole_cpu, parts = [], [], []
    history = None
    for r in range(a.repeats):
        learner = MutualLearner(cfg, images, labels)
        w, c = timed(learner.run)
        history = learner.history
        whole.append(w)
        whole_cpu.append(c)
        parts.append((sum(it.seconds_vae for it in history), sum(it.seconds_gmm for it in history)))
        print(f"  repeat {r + 1}: whole run {w:.2f} s wall ({c:.2f} s CPU), final accuracy {history[-1].accuracy:.4f}",
              flush=True)
    codes = history[-1].codes

    # --- 5. threads: fresh processes (OpenMP reads its wait policy at start-up), interleaved
    threads_rows = thread_check(a.thread_check, a.repeats, cfg.vae.epochs) if a.thread_check and not a.quick else []

    # --- report
    ours_s, naive_dl, naive_loop = (med(vae[key][0]) for key in runs)
    naive_best = min(naive_dl, naive_loop)
    ours_c = med(vae["ours"][1])
    rows = [
        ("VAE update, ours (`train_epochs`)", f"{ours_s:.2f}", f"{med(vae['ours'][1]):.2f}", ""),
        ("VAE update, naive (DataLoader)", f"{naive_dl:.2f}", f"{med(vae['naive (DataLoader)'][1]):.2f}",
         f"ours {naive_dl / ours_s:.2f}x faster"),
        ("VAE update, naive (Python loop)", f"{naive_loop:.2f}", f"{med(vae['naive (Python loop)'][1]):.2f}",
         f"ours {naive_loop / ours_s:.2f}x faster"),
        ("VAE update, matmul limit (GEMMs at the model's shapes)", f"{limit_s:.2f}", f"{limit_c:.2f}",
         f"ours at {100 * limit_s / ours_s:.0f}% of it (wall), {100 * limit_c / ours_c:.0f}% (CPU)"),
        ("VAE update, matmul limit (all FLOPs at the square-GEMM peak)", f"{peak_s:.2f}", f"{peak_c:.2f}",
         f"ours at {100 * peak_s / ours_s:.0f}% of it (wall), {100 * peak_c / ours_c:.0f}% (CPU)"),
        (f"whole run (iteration 0 + {cfg.iterations}, `MutualLearner.run`)", f"{med(whole):.2f}", f"{med(whole_cpu):.2f}",
         f"of which VAE {med([q[0] for q in parts]):.2f} s, GMM {med([q[1] for q in parts]):.2f} s"),
        (f"whole run floor: {cfg.iterations} VAE updates at the square-GEMM peak", "", f"{cfg.iterations * peak_c:.2f}",
         f"at {a.threads} thread(s): the matrix multiplies alone, at the cores' measured peak"),
    ]
    cpu_ratio = min(med(vae["naive (DataLoader)"][1]), med(vae["naive (Python loop)"][1])) / med(vae["ours"][1])
    gemm_rows = [(name, f"{m}x{kk}x{nn}", f"{1e6 * t:.0f}", f"{fl / t / 1e9:.1f}", f"{fl / c / 1e9:.1f}")
                 for (name, m, kk, nn, _), fl, t, c in zip(shapes + [("square peak", sq, sq, sq, "")], flops, per_call,
                                                           per_call_cpu)]
    def verdict(wall_ok, cpu_ok):
        return "met" if wall_ok and cpu_ok else "NOT met" if not (wall_ok or cpu_ok) else \
            ("met on wall time only" if wall_ok else "met on CPU time only")

    ratio_w, ratio_c = naive_best / ours_s, cpu_ratio
    met = {
        f"VAE update >= 2x faster than the faster naive ({ratio_w:.2f}x wall, {ratio_c:.2f}x CPU)":
            verdict(ratio_w >= TARGETS["vae_vs_naive"], ratio_c >= TARGETS["vae_vs_naive"]),
        f"VAE update >= 60% of the matmul limit at the model's shapes ({100 * limit_c / ours_c:.0f}% CPU; "
        f"{100 * limit_s / ours_s:.0f}% wall, but the wall limit was timed under another moment's load)":
            verdict(100 * limit_c / ours_c >= TARGETS["pct_of_limit"], 100 * limit_c / ours_c >= TARGETS["pct_of_limit"]),
        f"VAE update >= 60% of the square-peak limit ({100 * peak_c / ours_c:.0f}% CPU)":
            verdict(100 * peak_c / ours_c >= TARGETS["pct_of_limit"], 100 * peak_c / ours_c >= TARGETS["pct_of_limit"]),
        f"whole classic run <= 30 s ({med(whole):.1f} s wall, {med(whole_cpu):.1f} s CPU; floor at {a.threads} "
        f"thread(s) {cfg.iterations * peak_c:.1f} s)":
            verdict(med(whole) <= TARGETS["whole_run_s"], med(whole_cpu) <= TARGETS["whole_run_s"]),
    }
    naive_loop_c = med(vae["naive (Python loop)"][1])
    reading = [
        f"Reading: one VAE update is {total_flops / 1e9:.0f} GFLOP of matrix multiplies, which at this thread count's "
        f"measured GEMM rates take {limit_c:.2f} s of CPU; ours takes {ours_c:.2f} s, so {ours_c - limit_c:.2f} s "
        f"({100 * (ours_c - limit_c) / ours_c:.0f}%) is everything else: the same multiplies running slower inside "
        f"the loop than timed alone (operands no longer in cache), the elementwise loss and gradient terms, Adam, the "
        f"mini-batch gather, Python. The naive loop does the same multiplies; the most any implementation could "
        f"gain over it here is {naive_loop_c:.2f} / {limit_c:.2f} = {naive_loop_c / limit_c:.1f}x, and 2x needs ours "
        f"<= {naive_loop_c / 2:.2f} s CPU.",
        f"The whole classic run needs {cfg.iterations} such updates: {cfg.iterations} x {peak_c:.2f} s = "
        f"{cfg.iterations * peak_c:.1f} s of multiplies alone at {a.threads} thread(s) (square-GEMM peak)"
        + (f", so {TARGETS['whole_run_s']:.0f} s is out of reach at this thread count." if
           cfg.iterations * peak_c > TARGETS["whole_run_s"] else "."),
    ]
    if threads_rows:
        reading.append(
            "Threads (table above): with OpenMP's default wait policy, two threads next to other busy processes "
            "spin-wait at every barrier for a thread that is descheduled, and are many times slower than one; "
            "with OMP_WAIT_POLICY=PASSIVE they cost about what one does. On this shared 2-core machine run 1 "
            "thread (or set OMP_WAIT_POLICY=PASSIVE before torch starts); two threads only pay on an idle machine.")
    md = render(command, a, cfg, rows, gemm_rows, total_flops, steps, (step_rate, step_rate_c),
                (peak_rate, peak_rate_c), met, vae, whole,
                threads_rows, reading)
    print()
    print(md)
    gmm_md = gmm_speed(command, a, cfg, codes, f"the codes of the whole run's last iteration (seed {a.seed})")
    if a.out != "-":
        write_section(Path(a.out), md)
        write_section(Path(a.out), gmm_md)
        print(f"wrote the Speed and GMM speed sections of {a.out}")
    return 0


# ------------------------------------------------------------------------------------------------ GMM speed
def _fresh_process_cpu(code: str, deny_cache: bool = False) -> float:
    """CPU seconds a fresh Python process spends in ``code`` (which must leave the seconds in ``dt``)."""
    import subprocess

    prefix = ""
    if deny_cache:  # what numba does where no cache folder is writable: compile in memory
        prefix = ("import numba.core.caching as c\n"
                  "def deny(self):\n    raise PermissionError(13, 'read-only', self.get_cache_path())\n"
                  "c._CacheLocator.ensure_cache_path = deny\n")
    src = prefix + "import time\nt = time.process_time()\n" + code + "\nprint(time.process_time() - t)\n"
    out = subprocess.run([sys.executable, "-c", src], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def serket_train_seconds(path: Path, codes: np.ndarray, k: int, sweeps: int, ref_sweeps: int):
    """Wall and CPU seconds of Serket's own ``gmm.train`` for ``sweeps`` sweeps, from a run of ``ref_sweeps``
    sweeps and one of 0 (its start and read-out): ``T(0) + sweeps * (T(s) - T(0)) / s``."""
    import importlib.util
    import random
    import tempfile

    spec = importlib.util.spec_from_file_location("serket_gmm", path)
    serket = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serket)
    data = np.asarray(codes, dtype=np.float32)
    res = []
    for s in (0, ref_sweeps):
        np.random.seed(0)
        random.seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            res.append(timed(lambda: serket.train(data, k, s, tmp, np.ones((len(data), k)) / k, None, None)))
    (w0, c0), (ws, cs) = res
    return w0 + sweeps * (ws - w0) / ref_sweeps, c0 + sweeps * (cs - c0) / ref_sweeps


def gmm_speed(command: str, a, cfg, codes: np.ndarray, source: str) -> str:
    """Time the GMMs on ``codes (N, D)``; the markdown of the "## GMM speed" section."""
    k, sweeps = cfg.gmm.n_classes, cfg.gmm.sweeps
    n = len(codes)
    quick_points = 30 if a.quick else None
    CollapsedGibbsGMM(k, n_sweeps=1, random_state=0).fit(codes)  # numba's import and compiled-loop load, once
    gmm = {f"CollapsedGibbsGMM, Serket's sampler ({sweeps} sweeps)":
               lambda s: CollapsedGibbsGMM(k, n_sweeps=sweeps, random_state=s).fit(codes),
           f"GibbsGMM, blocked ({sweeps} sweeps)": lambda s: GibbsGMM(k, n_sweeps=sweeps, random_state=s).fit(codes),
           "EMGMM (n_init=1)": lambda s: EMGMM(k, n_init=1, random_state=s).fit(codes)}
    t = {name: ([], []) for name in gmm}
    for r in range(max(a.repeats, 5)):  # interleaved; each repeat its own chain
        for name, fn in gmm.items():
            w, c = timed(lambda: fn(a.seed + r))
            t[name][0].append(w)
            t[name][1].append(c)
    names = list(gmm)
    coll_w, coll_c = med(t[names[0]][0]), med(t[names[0]][1])
    ref_points = n if quick_points is None else min(quick_points, n)
    ref_w, ref_c = timed(lambda: collapsed_gibbs(codes, k, a.ref_sweeps, np.random.default_rng(a.seed),
                                                 points=quick_points))
    ref_100 = ref_w / a.ref_sweeps / ref_points * n * sweeps
    ref_100c = ref_c / a.ref_sweeps / ref_points * n * sweeps
    np_w, np_c = timed(lambda: collapsed_gibbs_numpy(codes, k, a.ref_sweeps, np.random.default_rng(a.seed),
                                                     points=quick_points))
    np_100 = np_w / a.ref_sweeps / ref_points * n * sweeps
    np_100c = np_c / a.ref_sweeps / ref_points * n * sweeps
    rows = [(name, f"{med(w):.3f}", f"{med(c):.3f}", f"{', '.join(f'{x:.2f}' for x in c)}")
            for name, (w, c) in t.items()]
    rows.append((f"the same per point in numpy, vectorised over the K classes (`collapsed_gibbs_numpy`), scaled to "
                 f"{sweeps} sweeps", f"{np_100:.1f}", f"{np_100c:.1f}",
                 f"CollapsedGibbsGMM {np_100c / coll_c:.0f}x faster (CPU; timed {a.ref_sweeps} sweep(s) of "
                 f"{ref_points} points)"))
    rows.append((f"per-point collapsed reference (`tests/gibbs_reference.py`), scaled to {sweeps} sweeps",
                 f"{ref_100:.1f}", f"{ref_100c:.1f}",
                 f"CollapsedGibbsGMM {ref_100c / coll_c:.0f}x faster (CPU; timed {a.ref_sweeps} sweep(s) of "
                 f"{ref_points} points)"))
    if a.serket_gmm is not None:
        sw, sc = serket_train_seconds(a.serket_gmm, codes, k, sweeps, a.ref_sweeps)
        rows.append((f"Serket's own `gmm.train`, {sweeps} sweeps (from runs of 0 and {a.ref_sweeps})", f"{sw:.1f}",
                     f"{sc:.1f}", f"CollapsedGibbsGMM {sc / coll_c:.0f}x faster (CPU)"))
    tiny = ("import numpy as np\nfrom vaegmm.model.gmm import CollapsedGibbsGMM\n"
            "CollapsedGibbsGMM(2, n_sweeps=1).fit(np.arange(8.0).reshape(4, 2))\n")
    if a.quick:  # three fresh processes that each import torch: too slow for the smoke test
        cached = compiled = float("nan")
    else:
        base = _fresh_process_cpu("import numpy as np\nimport vaegmm.model.gmm")
        cached = _fresh_process_cpu("import numpy as np\nimport vaegmm.model.gmm\n" + tiny) - base
        compiled = _fresh_process_cpu("import numpy as np\nimport vaegmm.model.gmm\n" + tiny, deny_cache=True) - base
    ok_c = coll_c <= TARGETS["collapsed_s"]
    ok_w = coll_w <= TARGETS["collapsed_s"]
    verdict = "met" if ok_c and ok_w else ("met on CPU time" if ok_c else "NOT met")
    lines = [GMM_SECTION, "",
             f"Command: `{command.strip()}` (written by it; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); "
             f"{os.cpu_count()} CPUs, shared (load average {os.getloadavg()[0]:.1f}), one thread. Data: {n} x "
             f"{codes.shape[1]} codes, {source}; K = {k}. Wall and CPU seconds per fit: medians of "
             f"{len(t[names[0]][1])} fits, the three GMMs interleaved, each fit its own seed.", "",
             table(["GMM", "wall s", "CPU s", "CPU s of each fit / note"], rows), "",
             f"One-time costs of the collapsed sampler, CPU seconds in a fresh process (after `import vaegmm.model.gmm`): "
             f"numba's import and loading the compiled loop from its on-disk cache {cached:.2f} s (the dashboard's "
             f"warm-up pays it before the first Start); compiling it where no cache folder is writable "
             f"{compiled:.2f} s (once per process).", "",
             f"Target: CollapsedGibbsGMM {sweeps} sweeps on {n} x {codes.shape[1]} <= {TARGETS['collapsed_s']:.0f} s "
             f"on one core ({coll_w:.2f} s wall, {coll_c:.2f} s CPU): **{verdict}**.", ""]
    return "\n".join(lines)


def gmm_only(a, command: str) -> int:
    """``--gmm-only``: the "## GMM speed" section on the iteration-1 codes of the serket-classic preset."""
    cfg = serket_classic().replace(seed=a.seed)
    if a.quick:
        cfg = cfg.replace(data__n=300, vae__epochs=2, iterations=1, gmm__sweeps=5)
    images, labels = load_mnist(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
    learner = MutualLearner(cfg.replace(iterations=1), images, labels)
    learner.run()
    md = gmm_speed(command, a, cfg, learner.history[1].codes,
                   f"what the serket-classic preset's GMM sees at iteration 1 (after the first VAE update; seed {a.seed})")
    print(md)
    if a.out != "-":
        write_section(Path(a.out), md)
        print(f"wrote the GMM speed section of {a.out}")
    return 0


def _drain(conn) -> None:
    """The reading end of the snapshot pipe, in its own process (the dashboard server's side, not timed)."""
    try:
        while True:
            conn.recv()
    except (EOFError, OSError):
        pass


def snapshot_overhead(a, argv) -> int:
    """--snapshots-only: the classic VAE update with and without live snapshots, interleaved, CPU seconds."""
    import multiprocessing as mp
    from types import SimpleNamespace

    from vaegmm.model.mutual import ProgressEvent
    from vaegmm.runs.snapshots import DEFAULT_EVERY, SnapshotTaker

    torch.set_num_threads(a.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(a.threads)
    every = DEFAULT_EVERY if a.snapshot_every is None else a.snapshot_every
    cfg = serket_classic().replace(seed=a.seed)
    if a.quick:
        cfg = cfg.replace(data__n=300, vae__epochs=30, vae__batch_size=100)
    v, n = cfg.vae, cfg.data.n
    images, labels = load_mnist(n, cfg.data.digits, cfg.seed, cfg.data.source)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    prior = torch.zeros(n, v.latent_dim)
    first = MutualLearner(cfg, images, labels).begin()  # iteration 0: the PCA axes the snapshots are drawn in
    ctx = mp.get_context("spawn")
    recv, send_conn = ctx.Pipe(duplex=False)
    reader = ctx.Process(target=_drain, args=(recv,), daemon=True)
    reader.start()
    recv.close()
    print(f"snapshot overhead: N={n} D={v.latent_dim} epochs={v.epochs} batch={v.batch_size}, a snapshot every "
          f"{every} s; load average {os.getloadavg()[0]:.1f}", flush=True)

    def update(snapshots: bool):
        g = torch.Generator().manual_seed(a.seed)
        model = VAE(v.latent_dim, v.hidden, generator=g)
        opt = make_optimizer(model, v.lr)
        taker = None
        if snapshots:
            learner = SimpleNamespace(model=model, x=x, history=[first])
            taker = SnapshotTaker(learner, lambda *msg: send_conn.send(msg), every=every)

        def on_epoch(rec):
            if taker is not None:
                taker(ProgressEvent("vae", 1, 1, rec.epoch, v.epochs, rec.recon, rec.kl))
        w, c = timed(lambda: train_epochs(model, opt, x, prior, v.alpha, v.epochs, v.batch_size, g, on_epoch))
        return w, c, taker

    update(False)  # warm-up
    rows = {False: ([], []), True: ([], [])}
    counts, spent, rates = [], [], []
    for r in range(a.repeats):
        for snaps in ((False, True) if r % 2 == 0 else (True, False)):
            w, c, taker = update(snaps)
            rows[snaps][0].append(w)
            rows[snaps][1].append(c)
            extra = ""
            if taker is not None:
                k = taker.count
                counts.append(k)
                spent.append(taker.seconds_spent)
                rates.append(k / w)
                extra = (f", {k} snapshots ({k / w:.2f}/s of wall time), {1000 * taker.seconds_spent / max(k, 1):.1f} "
                         f"ms CPU each")
            print(f"  repeat {r + 1}: VAE update {'with' if snaps else 'without'} snapshots: {w:.2f} s wall, "
                  f"{c:.2f} s CPU{extra}", flush=True)
    send_conn.close()
    reader.join(5)
    w0, c0 = med(rows[False][0]), med(rows[False][1])
    w1, c1 = med(rows[True][0]), med(rows[True][1])
    per_snap = med([s_ / max(k, 1) for s_, k in zip(spent, counts)])
    over_c, over_w = 100 * (c1 / c0 - 1), 100 * (w1 / w0 - 1)
    # what the overhead would be on an idle machine: one snapshot per `every` s of the update's CPU time
    idle_pct = 100 * per_snap / every
    command = "python bench/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = "\n".join([
        "## Live snapshots",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {a.threads} thread(s); load average "
        f"{os.getloadavg()[0]:.1f} at the end: the machine is shared, so CPU seconds of this process are the measure).",
        f"Setting: {n} images, D={v.latent_dim}, {v.epochs} epochs, batch {v.batch_size} (one VAE update); with "
        f"snapshots, every {every} s of the training thread's CPU time (at most 1.5 s of wall time apart; checked after "
        f"each epoch) all {n} images are encoded (encoder means), projected "
        f"into the last iteration's PCA axes and sent as float16 codes + float32 projection through a pipe to another "
        f"process, as a training worker does. Medians of {a.repeats} repeats, with and without interleaved.",
        "",
        "| VAE update | wall s | CPU s |",
        "|---|---|---|",
        f"| without snapshots | {w0:.2f} | {c0:.2f} |",
        f"| with snapshots | {w1:.2f} | {c1:.2f} |",
        "",
        f"Overhead: **{over_c:+.1f} % CPU** ({over_w:+.1f} % wall; target at most +5 %: "
        f"**{'met' if over_c <= 5 else 'NOT met'}**). One snapshot costs {1000 * per_snap:.1f} ms of CPU "
        f"(median, measured inside the taker); at one per {every} s of training CPU that is {idle_pct:.1f} %.",
        f"Snapshots: {med(counts):.0f} per update, **{med(rates):.2f} per second** of the update (target at least "
        f"one per 2 s: **{'met' if med(rates) >= 0.5 else 'NOT met'}**).",
        "",
        f"Raw CPU seconds: without {', '.join(f'{c:.2f}' for c in rows[False][1])}; with "
        f"{', '.join(f'{c:.2f}' for c in rows[True][1])}.",
    ])
    print()
    print(md)
    if a.out != "-":
        write_section(Path(a.out), md)
        print(f"wrote the Live snapshots section of {a.out}")
    return 0


def vae_only(a) -> int:
    """Child of --thread-check: time our VAE update for ``--vae-only`` epochs, print 'wall cpu' (seconds)."""
    torch.set_num_threads(a.threads)
    cfg = serket_classic().replace(seed=a.seed, vae__epochs=a.vae_only)
    images, _ = load_mnist(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    prior = torch.zeros(cfg.data.n, cfg.vae.latent_dim)
    make_ours(x, prior, cfg.replace(vae__epochs=1), a.seed)()  # warm-up
    w, c = timed(make_ours(x, prior, cfg, a.seed))
    print(f"{w} {c}")
    return 0


def thread_check(epochs: int, repeats: int, full_epochs: int):
    import subprocess

    settings = [(t, pol) for t in (1, 2) for pol in ("", "PASSIVE")]
    res = {s: ([], []) for s in settings}
    for _ in range(repeats):
        for t, pol in settings:
            env = dict(os.environ)
            env.pop("OMP_WAIT_POLICY", None)
            if pol:
                env["OMP_WAIT_POLICY"] = pol
            out = subprocess.run([sys.executable, __file__, "--vae-only", str(epochs), "--threads", str(t)],
                                 env=env, capture_output=True, text=True, check=True).stdout.split()
            w, c = float(out[-2]), float(out[-1])
            res[(t, pol)][0].append(w * full_epochs / epochs)
            res[(t, pol)][1].append(c * full_epochs / epochs)
            print(f"  threads {t} OMP_WAIT_POLICY={pol or '(default)'}: {res[(t, pol)][0][-1]:.2f} s wall, "
                  f"{res[(t, pol)][1][-1]:.2f} s CPU per update", flush=True)
    return [(str(t), pol or "(default)", f"{med(w):.2f}", f"{med(c):.2f}") for (t, pol), (w, c) in res.items()]


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def render(command, a, cfg, rows, gemm_rows, total_flops, steps, step_rate, peak_rate, met, vae, whole,
           threads_rows, reading=()) -> str:
    v = cfg.vae
    lines = [
        "## Speed",
        "",
        f"Command: `{command.strip()}` (written by it; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"`torch.set_num_threads({a.threads})` and numpy's BLAS at {a.threads} thread(s) (threadpoolctl); load average {os.getloadavg()[0]:.1f} at the end "
        "(the machine is shared: wall times include other processes' use of the cores; CPU = this process's CPU seconds).",
        f"Setting: {cfg.data.n} bundled images, D={v.latent_dim}, K={cfg.gmm.n_classes}, alpha={v.alpha}, "
        f"{v.epochs} epochs, batch {v.batch_size}, {cfg.iterations} iterations; medians of {a.repeats} repeats, "
        "ours and the naive references interleaved.",
        "",
        table(["measure", "wall s", "CPU s", "note"], rows),
        "",
        f"One VAE update = {steps} mini-batch steps = {total_flops / 1e9:.1f} GFLOP in the Linear layers: per image "
        "and epoch " + ", ".join(f"{kind} {macs:,} multiply-adds" for kind, macs in macs_per_image(v.latent_dim, v.hidden, 784))
        + " (the first layer needs no input gradient), 2 FLOP each.",
        f"Measured float32 GEMM rate at {a.threads} thread(s), by CPU time (by wall time): {step_rate[1]:.1f} "
        f"({step_rate[0]:.1f}) GFLOP/s over one step's GEMMs, {peak_rate[1]:.1f} ({peak_rate[0]:.1f}) GFLOP/s on the "
        "large square one. CPU-time rates are what the cores do; wall-time rates also count the time other "
        "processes held them, at the moment of this measurement.",
        "",
        table(["GEMM of one step", "MxKxN", "us per call (wall)", "GFLOP/s (wall)", "GFLOP/s (CPU)"], gemm_rows),
        "",
    ]
    if threads_rows:
        lines += [
            f"Threads: our VAE update timed for {a.thread_check} epochs in a fresh process per setting "
            f"(scaled to {v.epochs}; medians of {a.repeats}, interleaved). CPU s counts both threads' time.",
            "",
            table(["torch threads", "OMP_WAIT_POLICY", "wall s per update", "CPU s per update"], threads_rows),
            "",
        ]
    lines += [
        "Targets: " + "; ".join(f"{name}: **{ok}**" for name, ok in met.items()) + ".",
        "",
    ]
    for para in reading:
        lines += [para, ""]
    lines += [
        "Raw wall seconds: " + "; ".join(f"{k}: {', '.join(f'{t:.2f}' for t in w)}" for k, (w, _) in vae.items())
        + f"; whole run: {', '.join(f'{t:.2f}' for t in whole)}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
