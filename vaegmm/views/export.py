"""Run folders in Serket's layout, written atomically, and read back.

::

    <out>/module001_vae/z_learn.txt            codes of the last iteration (N, D)
    <out>/module001_vae/NNN/z_learn.txt        codes of iteration NNN (000 = untrained)
    <out>/module002_gmm/class_learn.txt        GMM class of each image (N,)
    <out>/module002_gmm/acc_learn.txt          Hungarian accuracy (one number)
    <out>/module002_gmm/mu_learn.txt           class means (K, D)
    <out>/module002_gmm/NNN/...                the same per iteration
    <out>/history.json                         config, per-iteration metrics and timings
    <out>/pca.png                              2-D PCA before vs after, coloured by digit
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from vaegmm.core.atomic import atomic_write_dir
from vaegmm.model.config import RunConfig
from vaegmm.model.mutual import IterationResult
from vaegmm.views import scatter

VAE_DIR, GMM_DIR = "module001_vae", "module002_gmm"


def history_dict(config: RunConfig, history: Sequence[IterationResult], status: str = "finished",
                 extra: dict | None = None) -> dict:
    """The JSON-able summary of a run."""
    return {"config": config.to_dict(), "status": status,
            "iterations": [r.metrics() for r in history], **(extra or {})}


def _write_module_files(folder: Path, result: IterationResult) -> None:
    vae, gmm = folder / VAE_DIR, folder / GMM_DIR
    vae.mkdir(parents=True, exist_ok=True)
    gmm.mkdir(parents=True, exist_ok=True)
    np.savetxt(vae / "z_learn.txt", result.codes, fmt="%.6f")
    np.savetxt(gmm / "class_learn.txt", result.classes, fmt="%d")
    np.savetxt(gmm / "acc_learn.txt", [result.accuracy], fmt="%.6f")
    np.savetxt(gmm / "mu_learn.txt", result.class_means, fmt="%.6f")


def write_run(out: str | os.PathLike, config: RunConfig, history: Sequence[IterationResult], labels: np.ndarray,
              status: str = "finished", overwrite: bool = True, plot: bool = True) -> Path:
    """Write the run folder ``out`` atomically (:func:`vaegmm.core.atomic.atomic_write_dir`): everything goes into
    a temporary sibling folder, which then takes the place of ``out``, so an interrupted export never leaves a
    folder that looks complete. ``overwrite=False``: an existing ``out`` is kept (FileExistsError). Returns the
    folder."""
    if not history:
        raise ValueError("nothing to export: the run has no finished iteration")

    def write(tmp: Path) -> None:
        for r in history:
            sub = f"{r.iteration:03d}"
            _write_module_files(tmp / "_iter" / sub, r)
            for module in (VAE_DIR, GMM_DIR):
                (tmp / module).mkdir(exist_ok=True)
                os.replace(tmp / "_iter" / sub / module, tmp / module / sub)
        shutil.rmtree(tmp / "_iter")
        _write_module_files(tmp, history[-1])
        np.savetxt(tmp / GMM_DIR / "category.txt", np.asarray(labels), fmt="%d")
        (tmp / "history.json").write_text(json.dumps(history_dict(config, history, status), indent=1))
        if plot:
            save_pca_figure(tmp / "pca.png", history[0], history[-1], labels)

    return atomic_write_dir(out, write, overwrite=overwrite)


def read_run(folder: str | os.PathLike) -> dict:
    """Parse a run folder back: ``{"history": dict, "codes": {it: (N, D)}, "classes": {it: (N,)},
    "accuracy": {it: float}, "means": {it: (K, D)}, "last": {...same keys for the top-level files}}``."""
    folder = Path(folder)
    hist = json.loads((folder / "history.json").read_text())
    out = {"history": hist, "codes": {}, "classes": {}, "accuracy": {}, "means": {}}
    for it in (r["iteration"] for r in hist["iterations"]):
        sub = f"{it:03d}"
        out["codes"][it] = np.loadtxt(folder / VAE_DIR / sub / "z_learn.txt", ndmin=2)
        out["classes"][it] = np.loadtxt(folder / GMM_DIR / sub / "class_learn.txt", dtype=np.int64, ndmin=1)
        out["accuracy"][it] = float(np.loadtxt(folder / GMM_DIR / sub / "acc_learn.txt"))
        out["means"][it] = np.loadtxt(folder / GMM_DIR / sub / "mu_learn.txt", ndmin=2)
    out["last"] = {"codes": np.loadtxt(folder / VAE_DIR / "z_learn.txt", ndmin=2),
                   "classes": np.loadtxt(folder / GMM_DIR / "class_learn.txt", dtype=np.int64, ndmin=1),
                   "accuracy": float(np.loadtxt(folder / GMM_DIR / "acc_learn.txt"))}
    return out


def zip_run(config: RunConfig, history: Sequence[IterationResult], labels: np.ndarray,
            status: str = "finished") -> bytes:
    """The run folder as zip bytes (for a download button)."""
    with tempfile.TemporaryDirectory() as d:
        folder = write_run(Path(d) / "vaegmm_run", config, history, labels, status=status)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(folder.parent).as_posix())
        return buf.getvalue()


def save_pca_figure(path: str | os.PathLike, before: IterationResult, after: IterationResult,
                    labels: np.ndarray) -> None:
    """Serket's tutorial figure: the 2-D PCA of the codes before and after, coloured by true digit (the colours,
    names and axes of :mod:`vaegmm.views.scatter`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.6), dpi=100)
    labels = np.asarray(labels)
    for i, (r, role) in enumerate(((before, "before"), (after, "after"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for d in np.unique(labels):
            m = labels == d
            ax.scatter(r.projection[m, 0], r.projection[m, 1], s=scatter.FIGURE_POINT_SIZE, label=str(d),
                       color=scatter.group_colour(int(d)))
        ax.set_title(scatter.pca_panel_title(r.iteration, role, r.accuracy))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.axes[-1].legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), title="digit")
    fig.tight_layout()
    fig.savefig(path)
