"""Concurrent requests' PointNet++ chunk batches joined into one forward pass (the predictor does this on CUDA).

Each assessment runs in its own worker thread and calls the network on small batches of chunks, (B, n, C) with
B = 8; on a GPU such a batch leaves most of the device idle. `MicroBatcher` is a features.point_chunks.Predictor
that queues the calls of concurrent threads; one thread runs up to `max_calls` of them as a single
(sum of B, n, C) batch, waiting at most `wait_s` after the first for others to arrive. The network treats the rows
of a batch independently (eval mode, no batch statistics), so each caller gets what a lone call would give.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from features.point_chunks import Predictor


@dataclass
class _Call:
    chunks: np.ndarray  # (B, n, C)
    result: Future = field(default_factory=Future)


class MicroBatcher:
    """A Predictor that joins concurrent callers' chunk batches; `close()` stops its thread."""

    def __init__(self, predict: Predictor, max_calls: int = 8, wait_s: float = 0.005) -> None:
        if max_calls < 1 or wait_s < 0:
            raise ValueError(f"MicroBatcher: max_calls must be >= 1 and wait_s >= 0, got {max_calls}, {wait_s}")
        self._predict, self.max_calls, self.wait_s = predict, max_calls, wait_s
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self.calls_per_pass: Counter[int] = Counter()  # how many callers each forward pass served
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="point-batcher", daemon=True)
        self._thread.start()

    def __call__(self, chunks: np.ndarray) -> tuple[np.ndarray, ...]:
        if self._closed:
            raise RuntimeError("the point batcher is closed")
        call = _Call(chunks)
        self._queue.put(call)
        return call.result.result()

    def close(self) -> None:
        """Finish the queued calls, then stop the thread."""
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._refuse_the_rest()
                return
            calls, stop = self._gather(first)
            by_shape: dict[tuple[int, ...], list[_Call]] = {}
            for call in calls:  # only chunks of one size and width can share a tensor
                by_shape.setdefault(call.chunks.shape[1:], []).append(call)
            for group in by_shape.values():
                self._forward(group)
            if stop:
                self._refuse_the_rest()
                return

    def _refuse_the_rest(self) -> None:
        """Calls that raced close() get an error rather than waiting for ever."""
        while True:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                return
            if call is not None:
                call.result.set_exception(RuntimeError("the point batcher is closed"))

    def _gather(self, first: _Call) -> tuple[list[_Call], bool]:
        """The first call and those arriving within wait_s of it (at most max_calls); True when closing."""
        calls, deadline = [first], time.monotonic() + self.wait_s
        while len(calls) < self.max_calls:
            remaining = deadline - time.monotonic()
            try:
                call = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if call is None:
                return calls, True
            calls.append(call)
        return calls, False

    def _forward(self, calls: list[_Call]) -> None:
        self.calls_per_pass[len(calls)] += 1
        try:
            heads = self._predict(np.concatenate([call.chunks for call in calls]))
        except Exception as e:  # every caller of the joined pass sees the error its own call would have raised
            for call in calls:
                call.result.set_exception(e)
            return
        start = 0
        for call in calls:
            stop = start + len(call.chunks)
            call.result.set_result(tuple(head[start:stop] for head in heads))
            start = stop
