"""Seconds-long view jobs (a t-SNE, an animated GIF) computed in a worker process forked from the training fork
server, so that neither the dashboard's page scripts nor the server's GIL wait for them."""
from __future__ import annotations

from typing import Callable, Optional

from vaegmm.core.process import call_in_worker


def answer(compute: Callable, args: tuple, conn) -> None:
    """Body of a job's worker process: sends ``("ok", compute(*args))``, or ``("error", message)`` when it raises
    (a ``ValueError``'s message is the sentence for the user; anything else is a bug, shown with its type)."""
    try:
        conn.send(("ok", compute(*args)))
    except ValueError as e:
        conn.send(("error", str(e)))
    except Exception as e:  # pragma: no cover - a bug: shown as the reason the view fell back
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def compute_in_worker(compute: Callable, args: tuple, timeout: float, name: str, nice: Optional[int] = None):
    """``compute(*args)`` in a fresh worker process (``compute`` a module-level function, ``args`` picklable):
    its value, or ValueError with its message; TimeoutError after ``timeout`` seconds, RuntimeError when the
    worker dies (:func:`vaegmm.core.process.call_in_worker`)."""
    return call_in_worker(answer, (compute, args), timeout=timeout, name=name, nice=nice)
