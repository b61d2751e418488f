"""The one idiom for a process-wide object (the slot manager, the sweep manager, the t-SNE service, the fork
server's context): a function decorated with :func:`process_singleton` builds it on the first call, under a lock,
and every later call in the process returns the same object. ``fn.reset()`` forgets it (tests)."""
from __future__ import annotations

import functools
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class _ProcessSingleton(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._made = False
        functools.update_wrapper(self, factory)

    def __call__(self) -> T:
        with self._lock:
            if not self._made:
                self._value = self._factory()
                self._made = True
            return self._value  # type: ignore[return-value]

    def peek(self) -> T | None:
        """The object if it was built, else None (builds nothing)."""
        with self._lock:
            return self._value if self._made else None

    def reset(self) -> None:
        """Forget the object; the next call builds a new one."""
        with self._lock:
            self._value, self._made = None, False


def process_singleton(factory: Callable[[], T]) -> _ProcessSingleton[T]:
    """Decorate a no-argument factory: the first call builds the object, later calls return it (thread-safe)."""
    return _ProcessSingleton(factory)
