"""``python -m vaegmm run ...``: the same run as the dashboard, headless, with a progress bar."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import GMM_BACKENDS, PRESETS, RunConfig, preset


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
    r.add_argument("--z", choices=["mean", "sample"], help="codes sent to the GMM")
    r.add_argument("--no-feedback", action="store_true", help="keep the prior at N(0, I) (baseline)")
    r.add_argument("--seed", type=int, help="random seed")
    r.add_argument("--source", help="auto, bundled, openml or idx:<folder>")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device")
    r.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(a: argparse.Namespace) -> RunConfig:
    cfg = preset(a.preset) if a.preset else RunConfig()
    ch = {}
    pairs = [("n", "data__n"), ("digits", "data__digits"), ("source", "data__source"),
             ("latent_dim", "vae__latent_dim"), ("alpha", "vae__alpha"), ("epochs", "vae__epochs"),
             ("batch_size", "vae__batch_size"), ("device", "vae__device"), ("gmm", "gmm__backend"),
             ("classes", "gmm__n_classes"), ("iterations", "iterations"), ("z", "codes"), ("seed", "seed")]
    for arg, key in pairs:
        v = getattr(a, arg)
        if v is not None:
            ch[key] = v
    if a.digits is not None and a.classes is None:
        ch["gmm__n_classes"] = len(a.digits)
    if a.no_feedback:
        ch["feedback"] = False
    return cfg.replace(**ch).validate() if ch else cfg.validate()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"vaegmm: error: {e}", file=sys.stderr)
        return 2
    from .data import load_mnist
    from .export import write_run
    from .mutual import MutualLearner
    from .threads import configure_torch_threads

    configure_torch_threads(capacity=1)  # one run: all cores, or $VAEGMM_TORCH_THREADS
    try:
        images, labels = load_mnist(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
    except ValueError as e:
        print(f"vaegmm: error: {e}", file=sys.stderr)
        return 2
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations * cfg.vae.epochs, unit="epoch", file=sys.stderr, dynamic_ncols=True)

    def progress(ev):
        if bar is not None and ev.phase == "vae":
            bar.update(1)
            bar.set_description(f"iteration {ev.iteration}/{ev.iterations}")
            bar.set_postfix(recon=f"{ev.recon:.1f}", kl=f"{ev.kl:.2f}")

    t0 = time.perf_counter()
    learner = MutualLearner(cfg, images, labels, callbacks=[progress])
    try:
        history = learner.run()
    except KeyboardInterrupt:
        history, status = learner.history, "stopped"
        print("\ninterrupted: writing the finished iterations", file=sys.stderr)
    else:
        status = "finished"
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    out = write_run(Path(args.out), cfg, history, labels, status=status)
    print(f"{'iter':>4} {'accuracy':>9} {'NMI':>7} {'ARI':>7} {'VAE s':>7} {'GMM s':>7}")
    for r in history:
        print(f"{r.iteration:>4} {r.accuracy:>9.4f} {r.nmi:>7.4f} {r.ari:>7.4f} {r.seconds_vae:>7.2f} {r.seconds_gmm:>7.2f}")
    print(f"wall time {wall:.1f} s; run folder: {out}")
    return 0 if status == "finished" else 130
