"""The run library: every dashboard and CLI run kept on disk, so it survives a closed tab and a server restart.

A run is a row in the results store (:mod:`vaegmm.store`: settings, status, timings, per-iteration metrics) and
a folder next to the database, ``<db folder>/runs/<run id>/``::

    data.npz            labels (N,) and the images as uint8 (N, 784): what the Latent explorer shows
    iterations/NNN.npz  one file per finished iteration: the explorer's arrays (codes as float16, encoder
                        means as float32, the 2-D projection, classes, class means, the decoder's weights as float16)
                        and what answering needs (the encoder's weights as float32, so a saved run's codes
                        and classes are the live run's; the GMM's posterior, the training matching, the PCA;
                        the held-out codes and classes). Files saved before these were kept still open: their
                        iterations cannot be asked (vaegmm.model.recognition.NotAnswerable)
    serket/             the Serket-layout export (module001_vae/..., module002_gmm/..., history.json, pca.png),
                        written when the run ends

Every file is written to a temporary name and renamed, and the store gets one transaction per iteration, so a
``kill -9`` of the server loses only the iteration in progress; runs it left ``running`` are marked
``interrupted`` when the next server opens the store (:meth:`RunStore.recover`).

Size: a classic run (3000 images, D=18, 5 iterations) takes about 3 MB. The folders are capped at
``$VAEGMM_RUNS_CAP_MB`` (default 2000 MB): when a run ends, the oldest finished runs' folders are deleted until
the total fits (their metrics stay in the store; only the explorer's arrays and the export go).
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from vaegmm.core.atomic import atomic_savez
from vaegmm.core.env import env_float
from vaegmm.model.config import RunConfig
from vaegmm.model.mutual import IterationResult
from vaegmm.model.projection import Projection2D
from vaegmm.runs.snapshots import SnapshotLog, to_half
from vaegmm.runs.state import ENDED, FAILED, Progress, Snapshot
from vaegmm.store import RunStore, StoreError
from vaegmm.views.export import write_run
from vaegmm.views.latent2d import RunViews

CAP_ENV = "VAEGMM_RUNS_CAP_MB"
DEFAULT_CAP_MB = 2000.0


def open_store(path=None):
    """``(store, "")`` with runs left ``running`` by a dead server marked ``interrupted``, or ``(None, reason)``
    when the results store cannot be opened for writing (the dashboard then trains without saving)."""
    try:
        store = RunStore(path)
        store.recover()
        return store, ""
    except (StoreError, OSError) as e:
        return None, str(e)


def runs_dir(store) -> Path:
    """The folder of the run folders: ``runs/`` beside the store's database file."""
    return Path(store.path).parent / "runs"


def cap_mb() -> float:
    """``$VAEGMM_RUNS_CAP_MB`` (>= 0), default 2000."""
    return env_float(CAP_ENV, DEFAULT_CAP_MB, lo=0.0)


def _nan_if_none(x) -> float:
    return float("nan") if x is None else float(x)


def _none_if_nan(x) -> Optional[float]:
    x = float(x)
    return None if np.isnan(x) else x


def iteration_arrays(r: IterationResult) -> dict:
    """What the explorer and answering need of one iteration, as arrays (float16 where precision does not show;
    a metric that is None, e.g. without labels, is stored as NaN)."""
    out = {
        "iteration": np.int64(r.iteration), "codes": to_half(r.codes),
        # encoder means in float32: the nearest training images of an asked image are the live run's
        "encoder_mean": np.asarray(r.encoder_mean, dtype=np.float32), "projection": r.projection.astype(np.float32),
        "classes": r.classes.astype(np.int16), "class_means": r.class_means.astype(np.float32),
        "class_means_2d": r.class_means_2d.astype(np.float32), "class_counts": r.class_counts.astype(np.int64),
        "metrics": np.array([_nan_if_none(v) for v in (r.accuracy, r.nmi, r.ari, r.seconds_vae, r.seconds_gmm)]),
        "heldout_metrics": np.array([_nan_if_none(v) for v in (r.heldout_accuracy, r.heldout_nmi,
                                                                  r.recognised_accuracy)]),
        "recon": np.asarray(r.recon, dtype=np.float32), "kl": np.asarray(r.kl, dtype=np.float32),
    }
    for k, v in (r.decoder_state or {}).items():
        out[f"decoder.{k}"] = to_half(v)
    for k, v in (r.encoder_state or {}).items():
        out[f"encoder.{k}"] = np.asarray(v, dtype=np.float32)
    for k, v in (r.gmm_posterior or {}).items():
        out[f"gmm.{k}"] = np.asarray(v)
    if r.digit_of_class is not None:
        out["digit_of_class"] = np.asarray(r.digit_of_class, dtype=np.int64)
    if r.heldout_codes is not None:
        out["heldout_codes"] = to_half(r.heldout_codes)
        out["heldout_classes"] = np.asarray(r.heldout_classes, dtype=np.int16)
    if r.pca is not None:
        out.update({"pca.center": r.pca.center, "pca.components": r.pca.components, "pca.rotation": r.pca.rotation,
                    "pca.explained": r.pca.explained})
    return out


def _prefixed(a, prefix: str, dtype=None) -> dict:
    """The arrays of ``a`` whose names start with ``prefix``, under the rest of their names."""
    return {k[len(prefix):]: (np.asarray(a[k], dtype=dtype) if dtype else np.asarray(a[k]))
            for k in a.files if k.startswith(prefix)}


def iteration_from_arrays(a) -> IterationResult:
    """The inverse of :func:`iteration_arrays` (float16 arrays come back as float32). Files from before the
    answering state was kept give empty ``encoder_state`` and ``gmm_posterior``."""
    acc, nmi, ari, s_vae, s_gmm = (float(x) for x in a["metrics"])
    pca = None
    if "pca.center" in a.files:
        pca = Projection2D(a["pca.center"], a["pca.components"], a["pca.rotation"], a["pca.explained"])
    held_acc, held_nmi, recognised = (_none_if_nan(x) for x in a["heldout_metrics"]) \
        if "heldout_metrics" in a.files else (None, None, None)
    return IterationResult(
        iteration=int(a["iteration"]), codes=np.asarray(a["codes"], dtype=np.float32),
        encoder_mean=np.asarray(a["encoder_mean"], dtype=np.float32), projection=np.asarray(a["projection"]),
        classes=np.asarray(a["classes"], dtype=np.int64), class_means=np.asarray(a["class_means"]),
        class_means_2d=np.asarray(a["class_means_2d"]), class_counts=np.asarray(a["class_counts"]),
        accuracy=_none_if_nan(acc), nmi=_none_if_nan(nmi), ari=_none_if_nan(ari),
        recon=[float(x) for x in a["recon"]], kl=[float(x) for x in a["kl"]],
        seconds_vae=s_vae, seconds_gmm=s_gmm, decoder_state=_prefixed(a, "decoder.", np.float32), pca=pca,
        encoder_state=_prefixed(a, "encoder.", np.float32), gmm_posterior=_prefixed(a, "gmm."),
        digit_of_class=np.asarray(a["digit_of_class"]) if "digit_of_class" in a.files else None,
        heldout_codes=np.asarray(a["heldout_codes"], dtype=np.float32) if "heldout_codes" in a.files else None,
        heldout_classes=np.asarray(a["heldout_classes"], dtype=np.int64) if "heldout_classes" in a.files else None,
        heldout_accuracy=held_acc, heldout_nmi=held_nmi, recognised_accuracy=recognised)


class RunRecorder:
    """Records one run into the store as it goes, the one way every run is recorded: :meth:`begin` (a
    ``running`` row and its folder), :meth:`data`, :meth:`iteration` (the row's metrics and the explorer file, per
    finished iteration), :meth:`end` (status, message, seconds, the Serket export, the size cap). Never raises (a
    full disk or a locked database must not stop the training): the first problem is kept in ``error``.

    ``export_dir``: the run's files live there already (``python -m vaegmm run --out``): the row points at it and
    only the row and its metrics are recorded (no library folder, no second export)."""

    def __init__(self, store, config: RunConfig, source: str = "dashboard", label: str = "", preset: str = "",
                 export_dir: Optional[str] = None):
        self.store = store
        self.config = config
        self.source, self.label, self.preset = source, label, preset
        self.export_dir = export_dir
        self.run_id: Optional[int] = None
        self.folder: Optional[Path] = None  # the library folder (None with export_dir)
        self.error = ""
        self._labels: Optional[np.ndarray] = None
        self._has_data = False
        self._heldout: Optional[dict] = None
        self._history: list[IterationResult] = []
        self._t0 = time.monotonic()

    def _safe(self, what: str, fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as e:  # kept for the page, never raised into the training's pump
            if not self.error:
                self.error = f"could not save the run ({what}): {e}"

    def begin(self) -> None:
        def go():
            self.run_id = self.store.begin_run(self.config, self.config.seed, self.source, label=self.label,
                                               preset=self.preset, export_dir=self.export_dir)
            if self.export_dir is None:
                self.folder = runs_dir(self.store) / str(self.run_id)
                self.folder.mkdir(parents=True, exist_ok=True)
                self.store.set_export_dir(self.run_id, str(self.folder))

        self._safe("begin", go)

    def data(self, labels: Optional[np.ndarray], images_u8: Optional[np.ndarray]) -> None:
        """The run's labels (None: unlabelled) and images as uint8 ``(N, 784)`` (None: not kept)."""
        self._labels = None if labels is None else np.asarray(labels)
        self._has_data = True
        if self.folder is None:
            return
        arrays = {} if labels is None else {"labels": np.asarray(labels, dtype=np.int64)}
        if images_u8 is not None:
            arrays["images_u8"] = np.asarray(images_u8, dtype=np.uint8)
        self._safe("images", atomic_savez, self.folder / "data.npz", **arrays)

    def heldout(self, summary: dict) -> None:
        """The run's held-out set (:func:`vaegmm.model.data.heldout_summary`), kept in the row's ``extra``."""
        self._heldout = dict(summary)

    def iteration(self, result: IterationResult) -> None:
        self._history.append(result)
        if self.run_id is None:
            return
        if self.folder is not None:
            self._safe("iteration files", atomic_savez, self.folder / "iterations" / f"{result.iteration:03d}.npz",
                       **iteration_arrays(result))
        self._safe(f"iteration {result.iteration}", self.store.add_iteration, self.run_id, result.metrics())

    def end(self, state: str, message: str, seconds: Optional[float] = None) -> None:
        """The run ended in ``state``; ``seconds`` its training time (default: since :meth:`begin`)."""
        if self.run_id is None:
            return
        status = state if state in ENDED else FAILED
        self._safe("status", self.store.finish_run, self.run_id, status, message or "",
                   time.monotonic() - self._t0 if seconds is None else seconds,
                   {"heldout": self._heldout} if self._heldout is not None else None)
        if self.folder is None:
            return
        if self._history and self._has_data:
            self._safe("Serket export", write_run, self.folder / "serket", self.config, self._history,
                       self._labels, status, plot=False)  # the pages draw it; no matplotlib in the server
        self._safe("size cap", enforce_cap, self.store)


@dataclass
class SavedRun:
    """A run read back from the library, with the reading side of a :class:`~vaegmm.runs.runner.TrainingRun`
    (``id``, ``name``, ``config``, ``history``, ``labels``, ``images_u8``, ``state``, :meth:`snapshot`), so the
    pages draw it as they draw a live run. Read-only: the commands do nothing."""

    id: int
    name: str
    config: RunConfig
    status: str
    message: str
    history: list = field(default_factory=list)
    labels: Optional[np.ndarray] = None
    images_u8: Optional[np.ndarray] = None
    seconds: Optional[float] = None
    created: Optional[float] = None
    source: str = ""
    saved: bool = True
    heldout: Optional[dict] = None  # the held-out set (vaegmm.model.data.heldout_summary); None: not recorded

    def __post_init__(self):
        self.views = RunViews(seed=self.config.seed)  # LDA axes, t-SNE embeddings, axis ranges, as a live run's
        self.replay_log = SnapshotLog()  # the in-update frames are not kept: Replay steps through the iterations

    @property
    def snapshots(self) -> list:
        return self.replay_log.frames()

    @property
    def state(self) -> str:
        return self.status

    def snapshot(self) -> Snapshot:
        its = max(0, len(self.history) - 1)
        per_it = self.seconds / its if self.seconds and its else None
        progress = Progress("done", its, self.config.iterations, self.config.vae.epochs, self.config.vae.epochs)
        return Snapshot(self.id, self.name, self.config, self.status, self.message, 0, progress, list(self.history),
                        self.created, None, per_it, None, {})

    def start(self) -> bool:
        return False

    def pause(self) -> None:
        pass

    resume = step = pause

    def stop(self, reason: str = "") -> None:
        pass

    def join(self, timeout: Optional[float] = None) -> bool:
        return True


def load_run(store, run_id: int) -> SavedRun:
    """The saved run ``run_id`` (its folder's arrays when they are still there; else the metrics alone).
    Raises ``ValueError`` when the store has no such run."""
    row = store.get_run(int(run_id))
    if row is None:
        raise ValueError(f"there is no saved run {run_id} in {store.path}")
    config = RunConfig.from_dict(row["config"])
    folder = Path(row["export_dir"]) if row.get("export_dir") else None
    history, labels, images = [], None, None
    if folder is not None and folder.is_dir():
        for f in sorted((folder / "iterations").glob("[0-9][0-9][0-9].npz")):
            with np.load(f) as a:
                history.append(iteration_from_arrays(a))
        if (folder / "data.npz").exists():
            with np.load(folder / "data.npz") as d:
                labels = d["labels"] if "labels" in d.files else None
                images = d["images_u8"] if "images_u8" in d.files else None
    name = row.get("label") or f"saved run {row['id']}"
    return SavedRun(int(row["id"]), f"#{row['id']} {name}".strip(), config, row["status"], row.get("message") or "",
                    history, labels, images, row.get("seconds"), row.get("created"), row.get("source", ""),
                    heldout=(row.get("extra") or {}).get("heldout"))


def folder_size_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / 2 ** 20


_cap_lock = threading.Lock()


def enforce_cap(store, limit_mb: Optional[float] = None) -> list[int]:
    """Delete the oldest ended runs' folders until the library fits in ``limit_mb`` (default :func:`cap_mb`);
    their rows and metrics stay. Returns the run ids whose folders went."""
    limit = cap_mb() if limit_mb is None else float(limit_mb)
    root = runs_dir(store)
    if not root.is_dir():
        return []
    with _cap_lock:
        folders = {int(p.name): p for p in root.iterdir() if p.is_dir() and p.name.isdigit()}
        sizes = {i: folder_size_mb(p) for i, p in folders.items()}
        total = sum(sizes.values())
        removed = []
        if total <= limit:
            return removed
        ended = {r["id"] for r in store.list_runs(status=sorted(ENDED))}
        for run_id in sorted(folders):  # oldest first: ids grow with time
            if total <= limit:
                break
            if run_id not in ended:
                continue
            shutil.rmtree(folders[run_id], ignore_errors=True)
            total -= sizes[run_id]
            removed.append(run_id)
            try:
                store.set_export_dir(run_id, None)
            except Exception:
                pass
        return removed
