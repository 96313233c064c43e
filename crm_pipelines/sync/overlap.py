"""Database work overlapped with network calls, on one worker thread each way.

* :class:`ReadAhead`: what comes next (pages of an import, the rows of the next batch to export)
  is produced by a worker while the caller handles the current item.
* :class:`WriteBehind`: the bookkeeping an export writes after each batch (links, hashes, intents
  done, rejects) is committed by a worker while the caller sends the next batch.

Socket waits and database calls release the GIL, so the two sides really run at the same time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from crm_pipelines.core.ratelimit import in_context

T = TypeVar("T")

_DONE = object()


class ReadAhead(Generic[T]):
    """Items of ``items`` (pages, batches), produced by a worker thread up to ``depth`` ahead of the consumer.

    Order is kept; an exception of the producer is raised here, in the caller's thread, after the
    items before it; :meth:`close` (the caller failed or stopped early) stops the worker at its
    next item.
    """

    def __init__(self, items: Iterable[T], depth: int = 8) -> None:
        self._slots: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._end: tuple[Any, BaseException | None] | None = None
        self._worker = threading.Thread(target=in_context(self._produce), args=(items,), name="read-ahead", daemon=True)
        self._worker.start()

    def _put(self, item: tuple[Any, BaseException | None]) -> bool:
        while not self._stop.is_set():
            try:
                self._slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterable[T]) -> None:
        source = iter(items)
        try:
            for item in source:
                if not self._put((item, None)):
                    return
            end: tuple[Any, BaseException | None] = (_DONE, None)
        except BaseException as exc:  # handed to the consumer
            end = (_DONE, exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        self._put(end)

    def _take(self, entry: tuple[Any, BaseException | None]) -> T:
        item, error = entry
        if item is _DONE:
            self._end = entry  # every later call ends the same way
            if error is not None:
                raise error
            raise StopIteration
        return item

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        return self._take(self._end if self._end is not None else self._slots.get())

    def ready(self) -> T | None:
        """The next item if the worker has it already, else None (never waits)."""
        if self._end is not None:
            return None
        try:
            entry = self._slots.get_nowait()
        except queue.Empty:
            return None
        if entry[0] is _DONE:
            self._end = entry
            return None
        return entry[0]

    def close(self) -> None:
        self._stop.set()
        # A worker waiting on the provider (a rate-limit window, a retry) stops at its next item;
        # the caller's error is not held back for longer than this.
        self._worker.join(timeout=30)


def read_ahead(items: Iterable[T], depth: int = 8) -> ReadAhead[T]:
    """``items`` produced ahead by a worker thread (see :class:`ReadAhead`)."""
    return ReadAhead(items, depth)


class WriteBehind:
    """A store whose writes that follow a sent batch run on a worker thread, in order.

    Calls of :attr:`DEFERRED` methods are queued and return at once; :attr:`INDEPENDENT` ones
    (they touch rows no queued write touches) run at once; any other call waits until every
    queued write is committed, so it sees them (``link_existing`` must see the links just saved).
    The first failed write stops the queue and is raised to the caller at its next call, or at
    :meth:`close`, which waits for the queue in every case: what was sent is recorded even when
    the caller stops on an error of its own. At most ``backlog`` writes wait in the queue: a
    deferred call beyond them waits for a place, so the records sent but not yet recorded stay few
    however much faster the provider answers than the database commits.
    """

    DEFERRED = frozenset({"save_exported", "drop_intents", "record_rejects", "resolve_rejects"})
    INDEPENDENT = frozenset({"write_intents", "load_changes", "intents"})
    #: Queued writes at most (a batch queues two to four).
    BACKLOG = 12

    def __init__(self, store: Any, backlog: int = BACKLOG) -> None:
        self._store = store
        self._queue: queue.Queue = queue.Queue(maxsize=backlog)
        self._failure: BaseException | None = None
        self._worker = threading.Thread(target=in_context(self._run), name="write-behind", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._failure is None:
                    method, args, kwargs = item
                    method(*args, **kwargs)
            except BaseException as exc:  # handed to the caller
                self._failure = exc
            finally:
                self._queue.task_done()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def check(self) -> None:
        """Raise the first queued write that failed, if one has (never waits)."""
        self._raise_failure()

    def flush(self) -> None:
        """Wait until every queued write is committed; raise the first that failed."""
        self._queue.join()
        self._raise_failure()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not callable(target):
            self.flush()
            return target
        if name in self.DEFERRED:
            def deferred(*args: Any, **kwargs: Any) -> None:
                self._raise_failure()
                self._queue.put((target, args, kwargs))

            return deferred

        def call(*args: Any, **kwargs: Any) -> Any:
            # Waits only once the arguments are evaluated: a provider call in them overlaps the queue.
            if name in self.INDEPENDENT:
                self._raise_failure()
            else:
                self.flush()
            return target(*args, **kwargs)

        return call

    def close(self) -> None:
        """Wait for the queued writes, stop the worker; raise the first write that failed."""
        self._queue.join()
        self._queue.put(None)
        self._worker.join()
        self._raise_failure()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except BaseException as failure:  # the caller's own error stays the one raised
            exc.__context__ = failure


__all__ = ["ReadAhead", "WriteBehind", "read_ahead"]
