"""Things loaded once per process and shared: indexes and critics hold weights and files that
take seconds to load, and every run of every graph that names one should get the same instance.
(Models have their own cache, an LRU bounded by the operator: ``models.registry``.)"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class OncePerKey(dict[Hashable, T], Generic[T]):
    """``load(key, loader)``: the first caller of a key loads it, later callers share it. A load
    that raises stores nothing, so the next caller tries again. A dict, so that an instance made
    in code can be put in by hand (``cache[key] = obj``: tests, embedding applications)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def load(self, key: Hashable, loader: Callable[[], T]) -> T:
        with self._lock:
            if key not in self:
                self[key] = loader()
            return self[key]
