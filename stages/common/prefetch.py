"""Compute the next items of a sequence on a background thread while the caller uses this one.

Extraction reads and preprocesses frame blocks (zarr chunk decompression, resize, normalise)
on the CPU, then runs the model on them. Done in turn, the model waits for the disk and the
CPU; with `prefetched` the next block is being prepared while the current one is computed.
One thread is enough: Blosc decompression and torch's CPU kernels release the GIL, and the
consumer is a single model. Items come back in order and each is computed exactly once, so the
results are those of the sequential loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetched(load: Callable[[T], R], items: Iterable[T], depth: int = 1) -> Iterator[R]:
    """`load(item)` for every item, in order, with up to `depth` items loaded ahead on one
    background thread; `depth` 0 loads each item when it is asked for (no thread).

    An exception raised by `load` comes out where that item is taken. Closing the iterator
    early (the consumer failed) waits for the loads in flight and drops their results.
    """
    if depth < 0:
        raise ValueError(f"prefetch depth must be >= 0, got {depth}")
    if depth == 0:
        yield from map(load, items)
        return
    pending: deque[Future[R]] = deque()
    remaining = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        try:
            for item in remaining:
                pending.append(pool.submit(load, item))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
