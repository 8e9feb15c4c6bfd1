"""The bounded cache every kept-between-jobs store uses (f5_worker/lru.py)."""

from __future__ import annotations

import threading

from f5_worker.lru import LRU


def test_the_least_recently_used_goes_first_and_is_made_again():
    made: list[str] = []

    def maker(key):
        def make():
            made.append(key)
            return object()
        return make

    cache = LRU(2)
    a = cache.get_or_make("a", maker("a"))
    b = cache.get_or_make("b", maker("b"))
    assert cache.get_or_make("a", maker("a")) is a  # a is now the most recent
    cache.get_or_make("c", maker("c"))  # over the size: b, the least recent, goes
    assert cache.get_or_make("a", maker("a")) is a
    assert cache.get_or_make("b", maker("b")) is not b
    assert made == ["a", "b", "c", "b"] and len(cache) == 2


def test_peek_keeps_the_order_and_eviction_is_told():
    evicted = []
    cache = LRU(2, on_evict=lambda key, value: evicted.append((key, value)))
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.peek("a") == 1  # not a use: a is still the least recent
    cache.put("c", 3)
    assert evicted == [("a", 1)] and "a" not in cache and cache.get("b") == 2
    cache.put("d", 4)  # b was used after c: c goes
    assert evicted[-1] == ("c", 3) and [k for k, _ in cache.items()] == ["b", "d"]


def test_drop_where_and_pop():
    cache = LRU(10)
    for key in [("anna", 1), ("anna", 2), ("bob", 1)]:
        cache.put(key, key)
    cache.drop_where(lambda key: key[0] == "anna")
    assert [k for k, _ in cache.items()] == [("bob", 1)]
    assert cache.pop(("bob", 1)) == ("bob", 1) and cache.pop("absent") is None and len(cache) == 0


def test_a_shared_lock_is_held_around_several_calls():
    lock = threading.RLock()
    first, second = LRU(2, lock=lock), LRU(2, lock=lock)
    with lock:  # reentrant: the caches' own calls take it again
        first.put("a", 1)
        second.put("a", first.get("a"))
    assert second.get("a") == 1
