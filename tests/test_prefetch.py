"""The background reader of extraction: order, exactly-once loading, errors, early close."""

from __future__ import annotations

import threading

import pytest

from stages.common.prefetch import prefetched


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_items_come_in_order_each_loaded_once(depth):
    loaded = []

    def load(item: int) -> int:
        loaded.append(item)
        return item * item

    assert list(prefetched(load, range(7), depth)) == [0, 1, 4, 9, 16, 25, 36]
    assert sorted(loaded) == list(range(7))


def test_loading_runs_ahead_on_another_thread():
    """With depth 1, item 1 is loaded (on a thread that is not the caller's) before item 0
    is handed over: the caller computes on item 0 while item 1 is read."""
    started = {i: threading.Event() for i in range(3)}
    threads = set()

    def load(item: int) -> int:
        threads.add(threading.get_ident())
        started[item].set()
        return item

    items = prefetched(load, range(3), depth=1)
    assert next(items) == 0
    assert started[1].wait(timeout=10)
    assert not started[2].is_set()  # never more than `depth` ahead
    assert list(items) == [1, 2]
    assert threads and threading.get_ident() not in threads


def test_an_error_comes_out_at_its_item_and_early_close_is_clean():
    def load(item: int) -> int:
        if item == 2:
            raise ValueError("bad block 2")
        return item

    items = prefetched(load, range(5), depth=2)
    assert [next(items), next(items)] == [0, 1]
    with pytest.raises(ValueError, match="bad block 2"):
        next(items)

    partial = prefetched(load, range(2), depth=1)
    assert next(partial) == 0
    partial.close()  # waits for the load in flight; no error, no thread left running
    with pytest.raises(ValueError, match="depth"):
        next(prefetched(load, range(2), depth=-1))
