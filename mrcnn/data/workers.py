"""Worker processes of the training feed: one image's sample a task.

Decoding, resizing, augmenting and target building are numpy, Pillow,
scikit-image and imgaug calls that hold Python's lock for much of their
time, so threads of one process share about one core. A
:class:`SamplePool` runs them in processes instead, started by *spawn*
(never *fork*: a forked copy of a process that runs TensorFlow can
deadlock on the locks its threads held).

Each worker receives, once, a picklable *maker* (an object with a
``slot(candidates, rng)`` method and a ``describe(image_id)`` method);
each task names the candidate image ids and the random generator of one
batch slot, and returns the result with the generator as it was left, so
a slot continues in the parent, or in another worker, exactly as it would
in one process: batches do not depend on the number of workers.

What a worker logs (warnings about images, dropped instances) comes back
with its result and is logged in the parent by the same loggers. An
exception in a worker comes back as :class:`FeedWorkerError` naming the
image; a worker that dies (killed, out of memory) breaks the pool and the
waiting batch raises, it does not hang. Workers ignore SIGINT (Ctrl-C
reaches the whole process group; the parent decides) and end when the
parent process ends, however it ends.
"""

import concurrent.futures
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import traceback

logger = logging.getLogger(__name__)

_worker_state = {"maker": None}


class FeedWorkerError(RuntimeError):
    """Building a training sample failed in a worker process. The message
    names the image, the original exception and its traceback in the
    worker."""


class _CapturedLogs(logging.Handler):
    """Keeps the records a task logs, made picklable, for the parent."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(
                record.exc_info)
            record.exc_info = None
        self.records.append(record)


def _exit_with_parent():
    """Ends this worker as soon as its parent process is gone (a SIGKILL
    of the parent would otherwise leave it waiting for tasks forever)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    multiprocessing.connection.wait([parent.sentinel])
    os._exit(1)


def _start_worker(payload):
    """Pool initializer: the maker, and the worker's signal and thread
    settings."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, daemon=True,
                     name="exit-with-parent").start()
    try:  # one thread a worker: the workers are the parallelism
        import cv2
        cv2.setNumThreads(1)
    except ImportError:
        pass
    _worker_state["maker"] = pickle.loads(payload)


def _run_task(candidates, rng):
    """One slot in a worker: (result, rng, log records, dropped counts)."""
    maker = _worker_state["maker"]
    captured = _CapturedLogs()
    root = logging.getLogger()
    root.addHandler(captured)
    previous_level = root.level
    root.setLevel(logging.INFO)
    try:
        result = maker.slot(candidates, rng)
    except Exception as error:
        raise FeedWorkerError("{}: {}: {}\nWorker traceback:\n{}".format(
            maker.describe(maker.current_image_id), type(error).__name__,
            error, traceback.format_exc())) from None
    finally:
        root.removeHandler(captured)
        root.setLevel(previous_level)
    return result, rng, captured.records, maker.take_drop_counts()


class SamplePool:
    """``workers`` spawned processes that run ``maker.slot`` tasks.

    maker: a picklable object with ``slot(candidates, rng)``,
        ``describe(image_id)``, ``current_image_id`` and
        ``take_drop_counts()`` (see mrcnn.data.feed); sent to each worker
        once, when the pool starts.
    Use :meth:`submit` from any thread; :meth:`close` ends the workers
    (also done when the pool is garbage collected).
    """

    def __init__(self, maker, workers):
        _check_spawnable(maker)
        self.workers = int(workers)
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(pickle.dumps(maker),))

    def submit(self, candidates, rng):
        """A future of (result, rng, log records, drop counts)."""
        return self._executor.submit(_run_task, candidates, rng)

    def processes(self):
        """The worker processes started so far (for tests and shutdown)."""
        return list((getattr(self._executor, "_processes", None)
                     or {}).values())

    def close(self):
        """Cancels queued tasks and ends the workers, waiting for them."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __del__(self):
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _check_spawnable(maker):
    """A clear error, in the parent, for what spawned workers cannot
    receive: unpicklable datasets or augmenters, or classes defined in an
    interactive session (a notebook), which a new process cannot import."""
    try:
        pickle.dumps(maker)
    except Exception as error:
        raise ValueError(
            "use_multiprocessing=True sends the dataset, config and "
            "augmentation to worker processes, but they cannot be pickled "
            "({}: {}); define them at module level, or use threads "
            "(use_multiprocessing=False)".format(type(error).__name__,
                                                 error)) from error
    main = sys.modules.get("__main__")
    interactive = main is not None and not getattr(main, "__file__", None)
    for item in maker.spawned_objects():
        module = type(item).__module__
        if module == "__main__" and interactive:
            raise ValueError(
                "use_multiprocessing=True: {} is defined in an interactive "
                "session (a notebook or the Python prompt), which worker "
                "processes cannot import; move it into a .py module, or use "
                "threads (use_multiprocessing=False)".format(
                    type(item).__qualname__))


def merge_logs(records):
    """Logs a worker's records in this process, by their loggers' rules."""
    for record in records:
        target = logging.getLogger(record.name)
        if target.isEnabledFor(record.levelno):
            target.handle(record)
