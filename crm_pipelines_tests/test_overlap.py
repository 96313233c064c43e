"""Overlapping database work and network calls: pages read ahead (joined into larger transactions
only when already waiting) and export bookkeeping written behind."""

import threading
import time

import pytest

from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.sync.importer import gathered
from crm_pipelines.sync.overlap import ReadAhead, WriteBehind


def page(start, n, errors=0):
    return Page([RemoteRecord(str(i), None, {}) for i in range(start, start + n)], [RecordError(f"e{start}", "X", "bad")] * errors)


class Scripted:
    """A read-ahead whose pages are ready or not as a script says (None: the next page is not ready yet)."""

    def __init__(self, script):
        self.script = list(script)

    def __iter__(self):
        return self

    def __next__(self):
        while self.script and self.script[0] is None:
            self.script.pop(0)  # waiting for it
        if not self.script:
            raise StopIteration
        return self.script.pop(0)

    def ready(self):
        if not self.script or self.script[0] is None:
            return None
        return self.script.pop(0)


def ids(p):
    return [r.external_id for r in p.records]


def test_waiting_pages_are_joined_up_to_the_limit_and_never_waited_for():
    script = [page(0, 100), page(100, 100), page(200, 100, errors=1), None, page(300, 100), page(400, 50), None, page(450, 100)]
    groups = list(gathered(Scripted(script), limit=250))
    assert [len(g.records) for g in groups] == [300, 150, 100]
    assert ids(groups[0]) == [str(i) for i in range(300)] and len(groups[0].errors) == 1
    assert ids(groups[1]) == [str(i) for i in range(300, 450)]


def test_a_page_at_the_limit_goes_alone():
    groups = list(gathered(Scripted([page(0, 100), page(100, 100)]), limit=100))
    assert [len(g.records) for g in groups] == [100, 100]


def _wait_ready(ahead, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ahead.ready()
        if found is not None:
            return found
        time.sleep(0.01)
    return None


def test_read_ahead_keeps_order_and_raises_the_readers_error_after_its_pages():
    def pages():
        yield page(0, 1)
        yield page(1, 1)
        raise ValueError("provider said no")

    ahead = ReadAhead(pages())
    try:
        assert ids(next(ahead)) == ["0"]
        assert ids(_wait_ready(ahead)) == ["1"]
        # The end (an error here) is not a page: ready() says so and keeps it for next().
        assert _wait_ready(ahead, timeout=0.5) is None
        with pytest.raises(ValueError, match="provider said no"):
            next(ahead)
        with pytest.raises(ValueError):
            next(ahead)
    finally:
        ahead.close()


def test_closing_stops_a_worker_with_pages_left():
    produced = []
    release = threading.Event()

    def pages():
        for i in range(1000):
            produced.append(i)
            if i == 5:
                release.wait(5)
            yield page(i, 1)

    ahead = ReadAhead(pages(), depth=2)
    assert ids(next(ahead)) == ["0"]
    ahead.close()
    release.set()
    time.sleep(0.2)
    assert len(produced) < 20


class RecordingStore:
    """Records the calls it gets; ``save_exported`` can be slow or fail."""

    def __init__(self, slow=0.0, fail_on=None):
        self.calls, self.slow, self.fail_on = [], slow, fail_on

    def save_exported(self, batch):
        time.sleep(self.slow)
        if batch == self.fail_on:
            raise RuntimeError(f"disk full at batch {batch}")
        self.calls.append(("save", batch))

    def resolve_rejects(self, batch):
        self.calls.append(("resolve", batch))

    def link_existing(self, batch):
        self.calls.append(("link", batch))
        return list(self.calls)

    def write_intents(self, batch):
        self.calls.append(("intents", batch))


def test_write_behind_keeps_order_and_a_reading_call_sees_every_queued_write():
    store = RecordingStore(slow=0.05)
    with WriteBehind(store) as behind:
        behind.save_exported(1)
        behind.resolve_rejects(1)
        behind.save_exported(2)
        seen = behind.link_existing(3)
    assert seen == [("save", 1), ("resolve", 1), ("save", 2), ("link", 3)]


def test_write_behind_does_not_hold_back_independent_calls():
    store = RecordingStore(slow=0.5)
    with WriteBehind(store) as behind:
        behind.save_exported(1)
        behind.write_intents(2)
        assert store.calls == [("intents", 2)]
    assert store.calls == [("intents", 2), ("save", 1)]


def test_a_failed_write_is_raised_at_the_next_call_and_stops_the_queue():
    store = RecordingStore(fail_on=1)
    behind = WriteBehind(store)
    behind.save_exported(1)
    behind.save_exported(2)  # queued behind the failing one: never applied
    with pytest.raises(RuntimeError, match="disk full at batch 1"):
        behind.link_existing(3)
    behind.close()
    assert store.calls == []


def test_the_callers_error_still_waits_for_the_queued_writes():
    store = RecordingStore(slow=0.2)
    with pytest.raises(ValueError, match="provider down"):
        with WriteBehind(store) as behind:
            behind.save_exported(1)
            raise ValueError("provider down")
    assert store.calls == [("save", 1)]


def test_write_behind_queues_at_most_its_backlog_and_then_the_caller_waits():
    entered, gate = threading.Event(), threading.Event()

    class GatedStore(RecordingStore):
        def save_exported(self, batch):
            entered.set()
            gate.wait()
            super().save_exported(batch)

    store, returned = GatedStore(), []
    behind = WriteBehind(store, backlog=2)
    behind.save_exported(0)
    entered.wait()  # the worker holds batch 0

    def send_more():
        for batch in range(1, 5):
            behind.save_exported(batch)
            returned.append(batch)

    sender = threading.Thread(target=send_more)
    sender.start()
    sender.join(timeout=2)
    # two more wait in the queue; the caller of the next waits for a place
    assert sender.is_alive() and len(returned) <= 2
    gate.set()
    sender.join()
    behind.close()
    assert returned == [1, 2, 3, 4] and store.calls == [("save", b) for b in range(5)]
