"""A bounded map, least recently used out first: every cache the worker keeps between jobs.

A worker serves for days, and what it keeps between jobs must level off (docs/api.md, "What the worker
keeps between jobs"): prepared references (tts/reference.py), stored voices and their prepared forms
(voices.py) are each an ``LRU`` of a fixed size. One helper, so the bound, the order and the locking are
written once. (cachetools would do it too, but it is not among the worker's dependencies, and
``functools.lru_cache`` caches a function, not values that are made, replaced and dropped by key.)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


class LRU(Generic[K, V]):
    """At most ``size`` values by key; putting one more drops the least recently used (``on_evict`` is told,
    under the lock). Safe across threads: each call holds ``lock``, which callers may share between caches
    that change together, and hold themselves around several calls (it is reentrant)."""

    def __init__(self, size: int, *, lock: threading.RLock | None = None,
                 on_evict: Callable[[K, V], None] | None = None):
        self.size = size
        self.lock = lock if lock is not None else threading.RLock()
        self._items: OrderedDict[K, V] = OrderedDict()
        self._on_evict = on_evict

    def get(self, key: K, default=None):
        """The value, now the most recently used; ``default`` when there is none."""
        with self.lock:
            value = self._items.get(key, _MISSING)
            if value is _MISSING:
                return default
            self._items.move_to_end(key)
            return value

    def peek(self, key: K, default=None):
        """The value, leaving the order as it is."""
        with self.lock:
            return self._items.get(key, default)

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` as the most recently used, dropping the least recently used beyond ``size``."""
        with self.lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                evicted, old = self._items.popitem(last=False)
                if self._on_evict is not None:
                    self._on_evict(evicted, old)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value, or ``make()``'s, kept. ``make`` runs outside the lock (it may take seconds), so two
        threads may both make a value for one key; the later one is kept, and both are correct."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            value = make()
            self.put(key, value)
        return value

    def pop(self, key: K, default=None):
        with self.lock:
            return self._items.pop(key, default)

    def drop_where(self, condition: Callable[[K], bool]) -> None:
        """Drop every value whose key meets ``condition``."""
        with self.lock:
            for key in [k for k in self._items if condition(k)]:
                del self._items[key]

    def items(self) -> list[tuple[K, V]]:
        """A copy, least recently used first."""
        with self.lock:
            return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
