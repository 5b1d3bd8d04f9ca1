"""Dynamic micro-batching: one worker thread turns queued items into batches for one model call."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from imgclf.errors import ImgclfError

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("imgclf.serve")


class QueueFullError(ImgclfError):
    """The batcher's queue cannot take the items now; ``retry_after_s`` estimates when it can."""

    def __init__(self, queued: int, capacity: int, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"server busy: {queued} of {capacity} queue slots taken; retry in {retry_after_s:.1f} s")


class DeadlineExceededError(ImgclfError):
    """An item's deadline passed before the worker reached it."""


class BatcherStoppedError(ImgclfError):
    """The batcher is shutting down and takes no new items."""


@dataclass
class _Item(Generic[T]):
    value: T
    future: Future
    deadline: float | None  # time.monotonic() seconds


class MicroBatcher(Generic[T, R]):
    """Queue items from any thread; one worker calls ``fn(list_of_items) -> list_of_results`` on batches.

    A batch starts when ``max_batch`` items wait or the oldest has waited ``max_wait_ms``. ``submit`` is
    all-or-nothing against ``capacity`` (raises :class:`QueueFullError`). Items whose future was cancelled or
    whose deadline passed are skipped (the latter fail with :class:`DeadlineExceededError`). ``warmup`` runs
    on the worker before :attr:`ready` turns true; ``on_batch(size, seconds)`` observes each batch.
    ``stop(drain=True)`` finishes every queued item before the worker exits. Should the worker itself die (an
    error outside ``fn``), every waiting item fails with :class:`BatcherStoppedError`, later submits are refused
    the same way, and :attr:`dead` says so.

    >>> b = MicroBatcher(lambda xs: [x * 2 for x in xs], max_batch=4, max_wait_ms=1).start()
    >>> [f.result() for f in b.submit([1, 2, 3])]
    [2, 4, 6]
    >>> b.stop()
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 16, max_wait_ms: float = 5.0,
                 capacity: int = 256, warmup: Callable[[], Any] | None = None,
                 on_batch: Callable[[int, float], None] | None = None) -> None:  # fmt: skip
        self.fn, self.max_batch, self.max_wait_s, self.capacity = fn, max_batch, max_wait_ms / 1000.0, capacity
        self.warmup, self.on_batch = warmup, on_batch
        self._queue: deque[_Item[T]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._batch_s = 0.01  # moving average of one batch's run time, for Retry-After
        self.error: BaseException | None = None  # what killed the warm-up, if anything
        self.died: BaseException | None = None  # what killed the worker after warm-up, if anything

    # -- control ------------------------------------------------------------------------------------------
    def start(self) -> MicroBatcher[T, R]:
        self._thread = threading.Thread(target=self._run, name="imgclf-inference", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop taking items; with ``drain`` finish the queued ones, else fail them with BatcherStoppedError."""
        with self._cond:
            self._stopping = True
            if not drain:
                while self._queue:
                    item = self._queue.popleft()
                    if item.future.set_running_or_notify_cancel():  # a cancelled future takes no exception
                        item.future.set_exception(BatcherStoppedError("server shutting down"))
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def ready(self) -> bool:
        """Warmed up, worker alive and taking items (a worker that has died is not, while its thread still logs)."""
        alive = self._thread is not None and self._thread.is_alive()
        return self._ready.is_set() and alive and self.died is None and not self._stopping

    @property
    def crashed(self) -> bool:
        """The worker warmed up, then died without being asked to stop."""
        if self._thread is None or self._stopping or not self._ready.is_set():
            return False
        return self.died is not None or not self._thread.is_alive()

    @property
    def dead(self) -> bool:
        """The worker was started and is gone without being asked to stop (crashed, or its warm-up failed)."""
        if self._thread is None or self._stopping:
            return False
        return self.error is not None or self.died is not None or not self._thread.is_alive()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def queued(self) -> int:
        """Items waiting for the worker (requests that gave up no longer count)."""
        return sum(1 for it in list(self._queue) if not it.future.cancelled())

    # -- producers ----------------------------------------------------------------------------------------
    def submit(self, values: Sequence[T], deadline: float | None = None) -> list[Future]:
        """Queue ``values`` (all or none) and return one future per value; ``deadline`` is time.monotonic()."""
        with self._cond:
            if self._stopping:
                raise BatcherStoppedError("server shutting down; retry on another instance")
            if self.died is not None:
                raise BatcherStoppedError(f"the inference worker died ({self.died!r}); restart the server")
            if len(self._queue) + len(values) > self.capacity and any(it.future.cancelled() for it in self._queue):
                # Requests that gave up (deadline, disconnect) free their slots now, not when the worker gets there.
                self._queue = deque(it for it in self._queue if not it.future.cancelled())
            if len(self._queue) + len(values) > self.capacity:
                batches_ahead = (len(self._queue) + len(values)) / self.max_batch
                raise QueueFullError(len(self._queue), self.capacity, max(1.0, batches_ahead * self._batch_s))
            items = [_Item(v, Future(), deadline) for v in values]
            self._queue.extend(items)
            self._cond.notify()
        return [it.future for it in items]

    # -- the worker ---------------------------------------------------------------------------------------
    def _next_batch(self) -> list[_Item[T]] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            # The oldest item sets the clock: wait for company at most max_wait after it arrived here.
            until = time.monotonic() + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._stopping:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _run(self) -> None:
        try:
            if self.warmup is not None:
                self.warmup()
        except Exception as exc:  # reported through .error; the server never turns ready
            self.error = exc
            return
        self._ready.set()
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - a dead worker must fail its waiters, not strand them
            log.error("the inference worker died: %r", exc, exc_info=exc)
            with self._cond:
                self.died = exc
                while self._queue:
                    item = self._queue.popleft()
                    if item.future.set_running_or_notify_cancel():
                        item.future.set_exception(BatcherStoppedError(f"the inference worker died ({exc!r})"))

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            now = time.monotonic()
            live = []
            for it in batch:
                if not it.future.set_running_or_notify_cancel():
                    continue  # the request gave up (deadline or disconnect)
                if it.deadline is not None and now > it.deadline:
                    it.future.set_exception(DeadlineExceededError("deadline passed while queued"))
                    continue
                live.append(it)
            if not live:
                continue
            start = time.perf_counter()
            try:
                results = self.fn([it.value for it in live])
            except Exception as exc:  # a failed batch fails its requests, not the worker
                for it in live:
                    it.future.set_exception(exc)
                continue
            except BaseException as exc:
                self.died = exc  # before the waiters hear of it, so that they can say why
                for it in live:  # the worker dies below, but these requests get their answer first
                    it.future.set_exception(BatcherStoppedError(f"the inference worker died ({exc!r})"))
                raise
            seconds = time.perf_counter() - start
            if len(results) != len(live):
                bad = RuntimeError(f"batch function returned {len(results)} results for {len(live)} items")
                for it in live:
                    it.future.set_exception(bad)
                continue
            self._batch_s = 0.8 * self._batch_s + 0.2 * seconds
            for it, res in zip(live, results):
                it.future.set_result(res)
            if self.on_batch is not None:
                try:
                    self.on_batch(len(live), seconds)
                except Exception:  # an observer's bug must not stop inference
                    log.exception("batch observer failed")
