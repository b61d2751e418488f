"""Two-dimensional views of the latent codes: PCA, LDA on the GMM's classes, and t-SNE (no Streamlit in here).

* **PCA** (:func:`pca_view`): the two directions of largest spread; what each iteration's result already carries
  (``IterationResult.projection``), aligned with the previous iteration so the picture does not flip.
* **LDA** (:func:`fit_lda_axes`): scikit-learn's ``LinearDiscriminantAnalysis`` fitted on the codes and the GMM's
  classes (never the digit labels): the two directions that best separate the classes the GMM found. The axes of
  a finished iteration are also applied to the codes of the next VAE update, so the live motion shows in LDA too.
* **t-SNE** (:func:`tsne_view`): openTSNE's FFT-accelerated t-SNE, warm-started from the previous iteration's
  embedding so points stay where they were. It takes seconds, so :class:`RunViews` computes it off the page's
  thread, in a worker process (:class:`TsneService`), once per run and iteration, and the page shows PCA
  meanwhile. During a VAE update the t-SNE view stays on the last finished iteration's embedding (a t-SNE per
  snapshot would cost seconds each).

A view that cannot be computed raises :class:`ValueError` with a sentence for the user; the page then shows PCA
and says why ("fell back to PCA: ...").
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from vaegmm.core.env import env_positive_int
from vaegmm.core.singleton import process_singleton
from vaegmm.model.projection import fit_pca2d
from vaegmm.views.jobs import compute_in_worker

PCA, LDA, TSNE = "pca", "lda", "tsne"
LABELS = {PCA: "PCA", LDA: "LDA", TSNE: "t-SNE"}
AXES = {PCA: ("PC 1", "PC 2"), LDA: ("LD 1", "LD 2"), TSNE: ("t-SNE 1", "t-SNE 2")}
EXPLAIN = {
    PCA: "PCA: the two directions in which the codes spread most. Honest about distances, but classes that are "
         "apart in all D dimensions can overlap here.",
    LDA: "LDA on the GMM's classes: the two directions that best separate the classes the GMM found (no digit "
         "labels used). Separate groups here mean the GMM's classes really are apart in the full code.",
    TSNE: "t-SNE: a map that keeps each code's nearest neighbours next to it. Groups are clusters in the full code; "
          "the distances between groups and their sizes mean little.",
}
TSNE_PERPLEXITY = 30.0
TSNE_MAX_POINTS = 20000  # above this a t-SNE takes minutes on 2 cores: the page says so and shows PCA
TSNE_JOBS_ENV = "VAEGMM_TSNE_JOBS"  # t-SNEs computed at once on the server (default 1)
TSNE_THREADS_ENV = "VAEGMM_TSNE_THREADS"  # threads of one t-SNE (default: all cores)
TSNE_NICE = 5  # a t-SNE is asked for by someone looking at the page: ahead of the training workers (nice 10)


@dataclass
class View2D:
    """A 2-D picture of N codes: ``xy (N, 2) float32``, the axis names, and ``means (K, 2)`` (the GMM class means
    in the same coordinates) when the view can place them."""

    kind: str
    xy: np.ndarray
    axes: tuple
    means: Optional[np.ndarray] = None


# ---------------------------------------------------------------------------------------------- alignment
def procrustes_rotation(xy: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal ``(2, 2)`` matrix (rotation or reflection) that best maps centred ``xy (N, 2)`` onto
    centred ``target (N, 2)`` (orthogonal Procrustes)."""
    a = np.asarray(xy, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    u, _, vt = np.linalg.svd((a - a.mean(axis=0)).T @ (b - b.mean(axis=0)))
    return u @ vt


def aligned(xy: np.ndarray, target: Optional[np.ndarray]) -> np.ndarray:
    """``xy`` turned (about its centre) to match ``target``; unchanged when there is no target of the same size."""
    xy = np.asarray(xy, dtype=np.float64)
    if target is None or len(target) != len(xy):
        return xy.astype(np.float32)
    c = xy.mean(axis=0)
    return ((xy - c) @ procrustes_rotation(xy, target) + c).astype(np.float32)


# ---------------------------------------------------------------------------------------------- PCA, LDA
def pca_view(codes: np.ndarray, previous: Optional[np.ndarray] = None) -> np.ndarray:
    """``codes (N, D)`` -> ``(N, 2) float32``: 2-D PCA, turned to match ``previous (N, 2)`` if given."""
    return fit_pca2d(codes, previous).transform(codes)


@dataclass
class LinearAxes:
    """``transform(x (M, D)) = (x - center) @ matrix``, giving ``(M, 2) float32``."""

    center: np.ndarray  # (D,)
    matrix: np.ndarray  # (D, 2)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.center) @ self.matrix).astype(np.float32)


def fit_lda_axes(codes: np.ndarray, classes: np.ndarray, target: Optional[np.ndarray] = None) -> LinearAxes:
    """LDA on ``codes (N, D)`` with the GMM's ``classes (N,)``: the two discriminant directions (unit length, so
    the coordinates are in the codes' units). With ``target
    (N, 2)`` (where these points were drawn just before) the axes are turned to match it.

    Raises ValueError when two axes cannot be found: fewer than 3 classes with points (LDA gives at most
    classes - 1 directions), fewer than 2 latent dimensions, or degenerate codes."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    codes = np.asarray(codes, dtype=np.float64)
    classes = np.asarray(classes)
    if codes.ndim != 2 or len(codes) != len(classes):
        raise ValueError(f"LDA needs codes (N, D) and N classes, got {codes.shape} and {classes.shape}")
    present, counts = np.unique(classes, return_counts=True)
    if len(present) < 3:
        raise ValueError(f"LDA needs at least 3 GMM classes with points for two axes; this iteration has "
                         f"{len(present)}")
    if codes.shape[1] < 2:
        raise ValueError(f"LDA needs at least 2 latent dimensions for two axes; the codes have {codes.shape[1]}")
    if not np.isfinite(codes).all():
        raise ValueError("LDA: the codes contain NaN or infinite values")
    if len(codes) <= len(present):
        raise ValueError(f"LDA needs more points ({len(codes)}) than classes ({len(present)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Variables are collinear": the SVD solver copes
            lda = LinearDiscriminantAnalysis(n_components=2, solver="svd").fit(codes, classes)
    except (np.linalg.LinAlgError, ValueError) as e:
        raise ValueError(f"LDA could not be fitted: {e}") from None
    matrix = np.asarray(lda.scalings_, dtype=np.float64)[:, :2]
    if matrix.shape[1] < 2:
        raise ValueError("LDA found fewer than two discriminant directions (the codes are degenerate)")
    # unit-length directions: coordinates in the codes' own units, as PCA's. (LDA's scalings measure in units of
    # the within-class spread, which shrinks as training goes on: the next VAE update's codes, seen in the last
    # iteration's axes, would fly off the screen.)
    norms = np.linalg.norm(matrix, axis=0)
    if not np.all(norms > 0) or not np.isfinite(matrix).all():
        raise ValueError("LDA found no discriminant directions (the codes are degenerate)")
    matrix = matrix / norms
    axes = LinearAxes(np.asarray(lda.xbar_, dtype=np.float64), matrix)
    if target is not None and len(target) == len(codes):
        axes.matrix = axes.matrix @ procrustes_rotation(axes.transform(codes), target)
    return axes


# ---------------------------------------------------------------------------------------------- t-SNE
def tsne_view(codes: np.ndarray, init: Optional[np.ndarray] = None, perplexity: float = TSNE_PERPLEXITY,
              n_jobs: int = 1, seed: int = 0, n_iter: int = 250, early_iter: int = 100) -> np.ndarray:
    """openTSNE of ``codes (N, D)`` -> ``(N, 2) float32``.

    ``init (N, 2)``: a warm start (the previous iteration's embedding of the same points). It is shrunk to the
    small spread t-SNE starts from (openTSNE's advice, std 1e-4), which keeps its layout, and the result is turned
    to match it, so points stay where they were unless their neighbours changed. Without it: openTSNE's PCA start.

    350 iterations in all (100 with early exaggeration), not openTSNE's 750: on 3000 codes of 18 dimensions the
    picture no longer changes visibly after that, and each iteration costs about 11 ms of CPU.

    Raises ValueError for too few points for the perplexity (t-SNE needs more than 3 x perplexity), too many points,
    non-finite codes, or openTSNE missing."""
    codes = np.ascontiguousarray(codes, dtype=np.float32)
    n = len(codes)
    if codes.ndim != 2 or n == 0:
        raise ValueError(f"t-SNE needs codes (N, D), got shape {codes.shape}")
    need = int(3 * perplexity) + 2
    if n < need:
        raise ValueError(f"t-SNE with perplexity {perplexity:g} needs at least {need} points; there are {n}")
    if n > TSNE_MAX_POINTS:
        raise ValueError(f"t-SNE is limited to {TSNE_MAX_POINTS} points here (it would take minutes); "
                         f"there are {n}")
    if not np.isfinite(codes).all():
        raise ValueError("t-SNE: the codes contain NaN or infinite values")
    try:
        import openTSNE
        from openTSNE import initialization as tsne_init
    except ImportError:
        raise ValueError("t-SNE needs the openTSNE package (pip install openTSNE)") from None
    if init is not None:
        init = np.asarray(init, dtype=np.float64)
        if init.shape != (n, 2) or not np.isfinite(init).all():
            init = None
    if init is None:
        start = tsne_init.pca(codes, 2, random_state=seed)
    else:
        start = tsne_init.rescale(init - init.mean(axis=0), target_std=1e-4)
    import logging

    logging.getLogger("openTSNE").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. scikit-learn's "Loky-backed parallel loops" note in a worker
        emb = openTSNE.TSNE(n_components=2, perplexity=perplexity, initialization=start,
                            n_jobs=max(1, int(n_jobs)), random_state=seed, n_iter=n_iter,
                            early_exaggeration_iter=early_iter, verbose=False).fit(codes)
    out = np.asarray(emb, dtype=np.float64)
    return aligned(out, init) if init is not None else out.astype(np.float32)


class TsneService:
    """Computes t-SNEs for the whole server, ``jobs`` at a time (``$VAEGMM_TSNE_JOBS``, default 1; the others
    wait), each in a fresh worker process forked from the training fork server (:mod:`vaegmm.views.jobs`), below the
    server's priority (nice 5: the page scripts come first) and above the training workers' (nice 10: someone is
    waiting for this picture), so neither the page scripts nor the GIL of the server ever wait for one.
    ``in_process=True`` computes in the service's thread instead (tests)."""

    def __init__(self, jobs: Optional[int] = None, threads: Optional[int] = None, in_process: bool = False,
                 timeout: float = 300.0):
        self.jobs = jobs or env_positive_int(TSNE_JOBS_ENV) or 1
        self.threads = threads or env_positive_int(TSNE_THREADS_ENV) or os.cpu_count() or 1
        self.in_process = in_process
        self.timeout = timeout
        self._pool: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()

    def submit(self, codes: np.ndarray, init_fn: Callable[[], Optional[np.ndarray]], seed: int = 0) -> Future:
        """Queue a t-SNE of ``codes``; ``init_fn()`` is called when the job starts (so a warm start can use an
        embedding that finished while this one waited). The future gives ``(N, 2) float32`` or raises
        ValueError."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="vaegmm-tsne")
            return self._pool.submit(self._compute, codes, init_fn, seed)

    def _compute(self, codes, init_fn, seed) -> np.ndarray:
        init = init_fn()
        if self.in_process:
            return tsne_view(codes, init=init, n_jobs=self.threads, seed=seed)
        return compute_in_worker(tsne_view, (codes, init, TSNE_PERPLEXITY, self.threads, seed),
                                 timeout=self.timeout, name="vaegmm-tsne", nice=TSNE_NICE)


@process_singleton
def default_tsne_service() -> TsneService:
    """The server's one :class:`TsneService` (every run's views share its queue)."""
    return TsneService()


# ---------------------------------------------------------------------------------------------- per run
class RunViews:
    """The 2-D views of one run's finished iterations and live snapshots, computed on demand and cached (LDA axes
    and t-SNE embeddings per iteration; PCA comes with each result). Thread-safe; nothing here blocks on a
    t-SNE: :meth:`iteration` returns None while one is being computed.

    Also keeps the run's axis ranges per view: the union of every picture drawn so far, with a margin, so the
    axes stay put while the live frames move (they only grow)."""

    def __init__(self, tsne: Optional[TsneService] = None, seed: int = 0):
        self._tsne_service = tsne
        self.seed = seed
        self._lock = threading.Lock()
        self._lda: dict[int, object] = {}  # iteration -> LinearAxes or the ValueError's message
        self._tsne: dict[int, np.ndarray] = {}
        self._tsne_errors: dict[int, str] = {}
        self._tsne_pending: dict[int, Future] = {}
        self._tsne_asked: dict[int, float] = {}  # iteration -> time.monotonic() when first asked
        self.tsne_seconds: dict[int, float] = {}  # iteration -> seconds from asking to ready
        self._ranges: dict[str, np.ndarray] = {}  # view -> [[x0, y0], [x1, y1]] shown
        self._boxes: dict[str, np.ndarray] = {}  # view -> bounding box of everything drawn

    @property
    def tsne_service(self) -> TsneService:
        return self._tsne_service or default_tsne_service()

    # -------------------------------------------------------------------------------------- LDA
    def lda_axes(self, history: Sequence, i: int) -> LinearAxes:
        """The LDA axes of iteration ``i`` (fitted on its codes and GMM classes), turned to match where the
        same codes sat in the previous iteration's LDA axes (the last live frame), so the picture does not jump
        when an iteration ends. Raises ValueError (cached) when LDA is not possible."""
        with self._lock:
            got = self._lda.get(i)
        if got is None:
            by_it = {r.iteration: r for r in history}
            r = by_it[i]
            target = None
            if i - 1 in by_it:
                try:
                    target = self.lda_axes(history, i - 1).transform(r.codes)
                except ValueError:
                    target = None
            try:
                got = fit_lda_axes(r.codes, r.classes, target)
            except ValueError as e:
                got = str(e)
            with self._lock:
                self._lda[i] = got
        if isinstance(got, str):
            raise ValueError(got)
        return got

    # -------------------------------------------------------------------------------------- t-SNE
    def _nearest_tsne(self, i: int) -> Optional[np.ndarray]:
        with self._lock:
            earlier = [j for j in self._tsne if j < i]
            return self._tsne[max(earlier)] if earlier else None

    def tsne_status(self, i: int) -> str:
        """"ready", "computing", "failed" or "" (never asked)."""
        with self._lock:
            if i in self._tsne:
                return "ready"
            if i in self._tsne_errors:
                return "failed"
            return "computing" if i in self._tsne_pending else ""

    def tsne(self, history: Sequence, i: int) -> Optional[np.ndarray]:
        """The t-SNE of iteration ``i`` if ready, else None (a job is queued on first asking: warm-started from
        the nearest earlier iteration's embedding ready by then). Raises ValueError when it failed."""
        with self._lock:
            if i in self._tsne:
                return self._tsne[i]
            if i in self._tsne_errors:
                raise ValueError(self._tsne_errors[i])
            if i in self._tsne_pending:
                return None
            r = next(r for r in history if r.iteration == i)
            self._tsne_asked[i] = time.monotonic()
            fut = self.tsne_service.submit(np.asarray(r.codes, dtype=np.float32), lambda: self._nearest_tsne(i),
                                           seed=self.seed)
            self._tsne_pending[i] = fut
        fut.add_done_callback(lambda f, i=i: self._tsne_done(i, f))
        return None

    def _tsne_done(self, i: int, fut: Future) -> None:
        try:
            xy = fut.result()
            err = None
        except ValueError as e:
            xy, err = None, str(e)
        except Exception as e:  # the worker died, a timeout: the page falls back to PCA and says why
            xy, err = None, f"{type(e).__name__}: {e}"
        with self._lock:
            self._tsne_pending.pop(i, None)
            if xy is not None:
                self._tsne[i] = np.asarray(xy, dtype=np.float32)
                self.tsne_seconds[i] = time.monotonic() - self._tsne_asked.get(i, time.monotonic())
            else:
                self._tsne_errors[i] = err

    def wait_tsne(self, i: int, timeout: float) -> bool:
        """Block until the t-SNE of ``i`` is done (tests and benchmarks only; the page never waits)."""
        with self._lock:
            fut = self._tsne_pending.get(i)
        if fut is not None:
            try:
                fut.result(timeout)
            except Exception:
                pass
        time.sleep(0.01)  # the done-callback runs right after the result is set
        return self.tsne_status(i) in ("ready", "failed")

    # -------------------------------------------------------------------------------------- views
    def iteration(self, history: Sequence, i: int, kind: str) -> Optional[View2D]:
        """The view ``kind`` of finished iteration ``i``; None while its t-SNE is being computed. Raises
        ValueError when the view is not possible (the caller shows PCA and the message)."""
        r = next(r for r in history if r.iteration == i)
        if kind == LDA:
            axes = self.lda_axes(history, i)
            return View2D(LDA, axes.transform(r.codes), AXES[LDA], axes.transform(r.class_means))
        if kind == TSNE:
            xy = self.tsne(history, i)
            return None if xy is None else View2D(TSNE, xy, AXES[TSNE], None)
        return View2D(PCA, np.asarray(r.projection, dtype=np.float32), AXES[PCA],
                      np.asarray(r.class_means_2d, dtype=np.float32))

    def live(self, history: Sequence, snapshot, kind: str) -> Optional[View2D]:
        """The view ``kind`` of an in-update snapshot (:class:`vaegmm.runs.snapshots.CodeSnapshot`): PCA and LDA in the
        axes of the last finished iteration, with that iteration's class means (the centres the VAE is pulling
        toward); t-SNE stays on the last finished iteration's embedding."""
        prev = snapshot.iteration - 1
        base = next((r for r in history if r.iteration == prev), None)
        if base is None:
            return None
        if kind == LDA:
            axes = self.lda_axes(history, prev)
            return View2D(LDA, axes.transform(snapshot.codes), AXES[LDA], axes.transform(base.class_means))
        if kind == TSNE:
            return self.iteration(history, prev, TSNE)
        return View2D(PCA, np.asarray(snapshot.projection, dtype=np.float32), AXES[PCA],
                      np.asarray(base.class_means_2d, dtype=np.float32))

    # -------------------------------------------------------------------------------------- axis ranges
    def ranges(self, kind: str, *arrays: Optional[np.ndarray], margin: float = 0.06) -> tuple:
        """``((x0, x1), (y0, y1))`` covering every array given now and before for ``kind`` (with ``margin`` of the
        span on each side, rounded outward to a twentieth of the span so small changes keep the same range)."""
        boxes = []
        for a in arrays:
            if a is None or len(a) == 0:
                continue
            a = np.asarray(a, dtype=np.float64)
            a = a[np.isfinite(a).all(axis=1)]
            if len(a):
                boxes.append(np.stack([a.min(axis=0), a.max(axis=0)]))
        with self._lock:
            seen = self._boxes.get(kind)
            if seen is not None:
                boxes.append(seen)
            if not boxes:
                return None
            lo = np.min([b[0] for b in boxes], axis=0)
            hi = np.max([b[1] for b in boxes], axis=0)
            self._boxes[kind] = np.stack([lo, hi])
            shown = self._ranges.get(kind)
            if shown is None or (lo < shown[0]).any() or (hi > shown[1]).any():
                span = np.maximum(hi - lo, 1e-6)
                step = span / 20
                self._ranges[kind] = np.stack([np.floor((lo - margin * span) / step) * step,
                                               np.ceil((hi + margin * span) / step) * step])
            r = self._ranges[kind]
        return (float(r[0, 0]), float(r[1, 0])), (float(r[0, 1]), float(r[1, 1]))
