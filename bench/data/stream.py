"""The prefetching input stream: decode and preprocess ahead of the device in worker threads.

PIL and numpy release the GIL for decoding and arithmetic, so threads overlap the host work
with the device's inference; the look-ahead is bounded so memory stays flat.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(items: Iterable[T], fn: Callable[[T], R], workers: int = 2, depth: int = 8) -> Iterator[tuple[T, R]]:
    """Yield ``(item, fn(item))`` in input order; an exception in ``fn`` is raised at its item."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="bench-prefetch") as pool:
        pending: deque[tuple[T, Future[R]]] = deque()
        iterator = iter(items)
        for item in iterator:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= depth:
                break
        while pending:
            item, future = pending.popleft()
            result = future.result()
            nxt = next(iterator, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(fn, nxt)))
            yield item, result
