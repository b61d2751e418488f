"""Run folders in Serket's layout, written atomically, and read back.

::

    <out>/module001_vae/z_learn.txt            codes of the last iteration (N, D)
    <out>/module001_vae/NNN/z_learn.txt        codes of iteration NNN (000 = untrained)
    <out>/module001_vae/z_recog.txt            held-out images' codes (encoder means) (M, D)
    <out>/module002_gmm/class_learn.txt        GMM class of each image (N,)
    <out>/module002_gmm/acc_learn.txt          Hungarian accuracy (one number; absent without labels)
    <out>/module002_gmm/mu_learn.txt           class means (K, D)
    <out>/module002_gmm/class_recog.txt        held-out images' GMM classes (M,), recognised with no learning
    <out>/module002_gmm/acc_recog.txt          held-out accuracy with the training matching (absent without labels)
    <out>/module002_gmm/category.txt           the training labels (absent without labels)
    <out>/module002_gmm/category_recog.txt     the held-out labels (absent without them)
    <out>/module002_gmm/NNN/...                the same per iteration
    <out>/history.json                         config, per-iteration metrics and timings
    <out>/pca.png                              2-D PCA before vs after, coloured by digit (by class without labels)

The ``*_recog`` files (Serket's recognition mode) are written when the run had a held-out set.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

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
    if result.accuracy is not None:  # as Serket: the accuracy only where there are labels
        np.savetxt(gmm / "acc_learn.txt", [result.accuracy], fmt="%.6f")
    np.savetxt(gmm / "mu_learn.txt", result.class_means, fmt="%.6f")
    if result.heldout_codes is not None:
        np.savetxt(vae / "z_recog.txt", result.heldout_codes, fmt="%.6f")
        np.savetxt(gmm / "class_recog.txt", result.heldout_classes, fmt="%d")
        if result.heldout_accuracy is not None:
            np.savetxt(gmm / "acc_recog.txt", [result.heldout_accuracy], fmt="%.6f")


def write_run(out: str | os.PathLike, config: RunConfig, history: Sequence[IterationResult],
              labels: Optional[np.ndarray], status: str = "finished", overwrite: bool = True, plot: bool = True,
              heldout_labels: Optional[np.ndarray] = None) -> Path:
    """Write the run folder ``out`` atomically (:func:`vaegmm.core.atomic.atomic_write_dir`): everything goes into
    a temporary sibling folder, which then takes the place of ``out``, so an interrupted export never leaves a
    folder that looks complete. ``overwrite=False``: an existing ``out`` is kept (FileExistsError). Returns the
    folder. ``labels (N,)`` or None (unlabelled); ``heldout_labels (M,)``: written as ``category_recog.txt``."""
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
        if labels is not None:
            np.savetxt(tmp / GMM_DIR / "category.txt", np.asarray(labels), fmt="%d")
        if heldout_labels is not None and history[-1].heldout_codes is not None:
            np.savetxt(tmp / GMM_DIR / "category_recog.txt", np.asarray(heldout_labels), fmt="%d")
        (tmp / "history.json").write_text(json.dumps(history_dict(config, history, status), indent=1))
        if plot:
            save_pca_figure(tmp / "pca.png", history[0], history[-1], labels)

    return atomic_write_dir(out, write, overwrite=overwrite)


def _read_number(path: Path) -> Optional[float]:
    return float(np.loadtxt(path)) if path.exists() else None


def read_run(folder: str | os.PathLike) -> dict:
    """Parse a run folder back: ``{"history": dict, "codes": {it: (N, D)}, "classes": {it: (N,)},
    "accuracy": {it: float or None}, "means": {it: (K, D)}, "recog_codes": {it: (M, D)}, "recog_classes":
    {it: (M,)}, "recog_accuracy": {it: float or None}, "last": {...the same for the top-level files}}`` (the
    ``recog`` entries only for iterations that have them)."""
    folder = Path(folder)
    hist = json.loads((folder / "history.json").read_text())
    out = {"history": hist, "codes": {}, "classes": {}, "accuracy": {}, "means": {}, "recog_codes": {},
           "recog_classes": {}, "recog_accuracy": {}}
    for it in (r["iteration"] for r in hist["iterations"]):
        vae, gmm = folder / VAE_DIR / f"{it:03d}", folder / GMM_DIR / f"{it:03d}"
        out["codes"][it] = np.loadtxt(vae / "z_learn.txt", ndmin=2)
        out["classes"][it] = np.loadtxt(gmm / "class_learn.txt", dtype=np.int64, ndmin=1)
        out["accuracy"][it] = _read_number(gmm / "acc_learn.txt")
        out["means"][it] = np.loadtxt(gmm / "mu_learn.txt", ndmin=2)
        if (vae / "z_recog.txt").exists():
            out["recog_codes"][it] = np.loadtxt(vae / "z_recog.txt", ndmin=2)
            out["recog_classes"][it] = np.loadtxt(gmm / "class_recog.txt", dtype=np.int64, ndmin=1)
            out["recog_accuracy"][it] = _read_number(gmm / "acc_recog.txt")
    out["last"] = {"codes": np.loadtxt(folder / VAE_DIR / "z_learn.txt", ndmin=2),
                   "classes": np.loadtxt(folder / GMM_DIR / "class_learn.txt", dtype=np.int64, ndmin=1),
                   "accuracy": _read_number(folder / GMM_DIR / "acc_learn.txt")}
    return out


def zip_run(config: RunConfig, history: Sequence[IterationResult], labels: Optional[np.ndarray],
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
                    labels: Optional[np.ndarray]) -> None:
    """Serket's tutorial figure: the 2-D PCA of the codes before and after, coloured by true digit (the colours,
    names and axes of :mod:`vaegmm.views.scatter`); without labels, by each iteration's GMM class."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.6), dpi=100)
    for i, (r, role) in enumerate(((before, "before"), (after, "after"))):
        ax = fig.add_subplot(1, 2, i + 1)
        groups = np.asarray(r.classes if labels is None else labels)
        for d in np.unique(groups):
            m = groups == d
            ax.scatter(r.projection[m, 0], r.projection[m, 1], s=scatter.FIGURE_POINT_SIZE, label=str(d),
                       color=scatter.group_colour(int(d)))
        ax.set_title(scatter.pca_panel_title(r.iteration, role, r.accuracy))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.axes[-1].legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
                        title="digit" if labels is not None else "GMM class")
    fig.tight_layout()
    fig.savefig(path)
