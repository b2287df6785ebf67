"""SIGTERM while training: finish the file being written, then stop.

A scheduler (SLURM, Kubernetes, a preemptible VM) stops a job with SIGTERM.
Python's default is to die on the spot, which loses a checkpoint that was
being written (its epoch then runs again) and leaves its temporary file
behind. While ``MaskRCNN.train()`` runs, SIGTERM instead:

* waits for a write in progress (:func:`writing`): the epoch's checkpoint,
  the best-model weights and their score, which are finished first;
* otherwise raises :class:`Terminated` in the main thread, so ``finally``
  blocks remove temporaries;
* and then ends the process by SIGTERM as before (exit status -15 / 143).

Only a default SIGTERM disposition in the main thread is replaced: a
handler of the application's own is left alone.
"""

import contextlib
import logging
import os
import signal
import threading

logger = logging.getLogger(__name__)

# writing(): how deep, and whether a SIGTERM came meanwhile.
_state = {"writing": 0, "pending": False}


class Terminated(BaseException):
    """SIGTERM arrived while training (a BaseException, like
    KeyboardInterrupt, so that ``except Exception`` does not swallow it)."""


def _on_sigterm(signum, frame):
    if _state["writing"]:
        _state["pending"] = True  # raised when the write is done
        return
    raise Terminated()


@contextlib.contextmanager
def writing():
    """Holds back a SIGTERM until the block (a file write) is done."""
    _state["writing"] += 1
    try:
        yield
    finally:
        _state["writing"] -= 1
    if not _state["writing"] and _state["pending"]:
        _state["pending"] = False
        raise Terminated()


@contextlib.contextmanager
def sigterm_stops_cleanly(log_dir):
    """Context of a training run writing to log_dir: SIGTERM unwinds the
    stack, then terminates the process by SIGTERM (see the module doc)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        message = ("Terminated (SIGTERM). The checkpoints of the finished "
                   "epochs are in {}; load model.find_last() to resume."
                   .format(log_dir))
        logger.error(message)
        os.kill(os.getpid(), signal.SIGTERM)  # the default action: exit
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _state["pending"] = False
