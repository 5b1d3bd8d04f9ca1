"""Micro-batching: batches form up to max_batch, limits are all-or-nothing, nothing queued is lost on stop."""

from __future__ import annotations

import threading
import time

import pytest

from imgclf.serve import BatcherStoppedError, DeadlineExceededError, MicroBatcher, QueueFullError


class Recorder:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, xs: list[int]) -> list[int]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(xs))
        return [x * 10 for x in xs]


def test_items_queued_together_run_in_batches_of_at_most_max_batch() -> None:
    rec = Recorder()
    b = MicroBatcher(rec, max_batch=4, max_wait_ms=50).start()
    futures = b.submit(list(range(10)))
    assert [f.result(5) for f in futures] == [x * 10 for x in range(10)]
    b.stop()
    assert all(len(batch) <= 4 for batch in rec.batches)
    assert [x for batch in rec.batches for x in batch] == list(range(10))  # order kept
    assert len(rec.batches) == 3  # 4 + 4 + 2: the waiting items were batched, not run one by one


def test_a_lone_item_is_not_held_forever_and_on_batch_observes() -> None:
    seen = []
    b = MicroBatcher(lambda xs: xs, max_batch=64, max_wait_ms=1, on_batch=lambda n, s: seen.append(n)).start()
    assert b.submit([7])[0].result(5) == 7
    b.stop()
    assert seen == [1]


def test_capacity_is_all_or_nothing_and_says_when_to_retry() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=1, max_wait_ms=0, capacity=3).start()
    first = b.submit([1])  # taken by the worker, which then blocks on the gate
    assert rec.entered.wait(5)
    queued = b.submit([2, 3])
    with pytest.raises(QueueFullError) as info:
        b.submit([4, 5])  # 2 + 2 > 3: none of them is queued
    assert info.value.retry_after_s >= 1
    assert b.queued == 2
    more = b.submit([6])  # one still fits
    gate.set()
    assert [f.result(5) for f in first + queued + more] == [10, 20, 30, 60]
    b.stop()


def test_expired_and_cancelled_items_are_skipped() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=8, max_wait_ms=0).start()
    blocker = b.submit([0])
    assert rec.entered.wait(5)
    late = b.submit([1], deadline=time.monotonic() + 0.01)
    cancelled = b.submit([2])
    live = b.submit([3])
    assert cancelled[0].cancel()
    time.sleep(0.05)  # let the first deadline pass while the worker is busy
    gate.set()
    assert blocker[0].result(5) == 0 and live[0].result(5) == 30
    with pytest.raises(DeadlineExceededError):
        late[0].result(5)
    b.stop()
    assert [x for batch in rec.batches for x in batch] == [0, 3]  # the model never saw 1 or 2


def test_a_failing_batch_fails_its_items_and_the_worker_goes_on() -> None:
    def fn(xs: list[int]) -> list[int]:
        if 13 in xs:
            raise ValueError("unlucky")
        return xs

    b = MicroBatcher(fn, max_batch=1, max_wait_ms=0).start()
    bad, good = b.submit([13]), b.submit([1])
    with pytest.raises(ValueError, match="unlucky"):
        bad[0].result(5)
    assert good[0].result(5) == 1
    short = MicroBatcher(lambda xs: [], max_batch=2).start()
    with pytest.raises(RuntimeError, match="0 results for 1"):
        short.submit([1])[0].result(5)
    b.stop()
    short.stop()


def test_stop_drains_what_is_queued_then_refuses_new_items() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=2, max_wait_ms=0).start()
    futures = b.submit([1]) + b.submit([2, 3, 4])
    assert rec.entered.wait(5)
    stopper = threading.Thread(target=b.stop)
    stopper.start()
    time.sleep(0.05)
    with pytest.raises(BatcherStoppedError):
        b.submit([5])
    gate.set()
    stopper.join(5)
    assert [f.result(0) for f in futures] == [10, 20, 30, 40]
    assert not b.ready


def test_stop_without_drain_fails_the_queue() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=1, max_wait_ms=0).start()
    running = b.submit([1])
    assert rec.entered.wait(5)
    waiting = b.submit([2])
    b.stop(drain=False, timeout=0.1)
    with pytest.raises(BatcherStoppedError):
        waiting[0].result(5)
    gate.set()
    assert running[0].result(5) == 10


def test_readiness_follows_warmup() -> None:
    gate = threading.Event()
    b = MicroBatcher(lambda xs: xs, warmup=lambda: gate.wait(10)).start()
    assert not b.ready
    gate.set()
    assert b.wait_ready(5) and b.ready
    b.stop()

    def broken() -> None:
        raise OSError("weights unreadable")

    failed = MicroBatcher(lambda xs: xs, warmup=broken).start()
    failed._thread.join(5)
    assert not failed.ready and isinstance(failed.error, OSError)
