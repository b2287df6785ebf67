"""Run folders, checkpoint paths, and finding the last checkpoint.

Each training run writes to its own folder,
``<model_dir>/<name><YYYYmmddTHHMM>/`` (lower-case NAME, local start time
to the minute), with files named
``mask_rcnn_<name>_<epoch>.weights.h5`` (epoch 1-based, 4 digits); legacy
``.h5`` files of the same names are recognised too. A second run of the
same NAME started in the same minute gets ``..._2``, a third ``..._3``:
folders are created with os.mkdir, which fails rather than share one.
"""

import datetime
import errno
import json
import os
import re

from mrcnn import atomic_files

# Checkpoints: <model_dir>/<name><YYYYmmddTHHMM>[_<n>]/
#     mask_rcnn_<name>_<epoch>.weights.h5
# Any NAME: dots, spaces and other non-word characters included.
CHECKPOINT_RE = re.compile(
    r".*[/\\][^/\\]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(?:_\d+)?[/\\]"
    r"mask\_rcnn\_[^/\\]+(\d{4})(\.weights)?\.h5$")

BEST_SUFFIX = "_best.weights.h5"

# Written in a run folder started from a checkpoint of another run (or not
# the last of its own): which file the run's weights and epoch count came from.
PARENT_FILE = "parent_checkpoint.json"


def is_best_checkpoint(filename):
    """True for the best-model file (train(monitor=...)), which is not an
    epoch checkpoint."""
    return filename.endswith(BEST_SUFFIX)


def _now():
    """The local time a run starts (a function so tests can fix it)."""
    return datetime.datetime.now()


def _run_dir_re(name):
    """Folder names of the runs of config NAME name: NAME, the start minute,
    and an optional _<n>. "balloon" must not pick "balloon_big" runs."""
    return re.compile(re.escape(name.lower()) + r"(\d{8}T\d{4})(?:_(\d+))?$")


def run_dirs(model_dir, name):
    """The run folders of config NAME name under model_dir, oldest first.

    Ordered by start minute, then by suffix as a number (no suffix, _2, _3,
    ..., _10), which is the order os.mkdir created them in.
    """
    if not os.path.isdir(model_dir):
        return []
    pattern = _run_dir_re(name)
    found = []
    for dir_name in os.listdir(model_dir):
        match = pattern.match(dir_name)
        if match and os.path.isdir(os.path.join(model_dir, dir_name)):
            found.append(((match.group(1), int(match.group(2) or 1)),
                          os.path.join(model_dir, dir_name)))
    return [path for _, path in sorted(found)]


def epoch_checkpoints(run_dir):
    """The epoch checkpoint file names of one run folder, by epoch number
    (the best-model file and temporaries excluded)."""
    return sorted(f for f in os.listdir(run_dir)
                  if f.startswith("mask_rcnn")
                  and not is_best_checkpoint(f)
                  and (f.endswith(".weights.h5") or f.endswith(".h5")))


def find_last_checkpoint(model_dir, name):
    """Path of the newest checkpoint of the last run of config NAME name.

    Runs that crashed before their first checkpoint are passed over. Raises
    FileNotFoundError naming model_dir when there is none.
    """
    for run_dir in reversed(run_dirs(model_dir, name)):
        checkpoints = epoch_checkpoints(run_dir)
        if checkpoints:
            return os.path.join(run_dir, checkpoints[-1])
    raise FileNotFoundError(
        errno.ENOENT,
        "Could not find a checkpoint of {!r} under model_dir".format(
            name.lower()), model_dir)


def new_run_dir(model_dir, name):
    """Path a new run of NAME name would get now: the first free one of
    <name><YYYYmmddTHHMM>, ..._2, ... (create_run_dir takes it for real)."""
    base = os.path.join(model_dir, "{}{:%Y%m%dT%H%M}".format(name.lower(),
                                                             _now()))
    number = 1
    while True:
        path = base if number == 1 else "{}_{}".format(base, number)
        if not os.path.exists(path):
            return path
        number += 1


def create_run_dir(path, parent=None, epoch=0):
    """Creates the run folder path, or the next free ``path_<n>`` should
    another run have taken path; never an existing folder. With parent
    (the checkpoint the run starts from, at epoch), writes PARENT_FILE in
    it. Returns the path created."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    match = re.search(r"(\d{8}T\d{4})(?:_(\d+))?$", path)
    base = path[:match.end(1)] if match else path
    number = int(match.group(2) or 1) if match else 1
    while True:
        candidate = base if number == 1 else "{}_{}".format(base, number)
        try:
            os.mkdir(candidate)  # atomic: exactly one process succeeds
            break
        except FileExistsError:
            number += 1
    if parent:
        # Atomic: a run folder never holds half a record.
        atomic_files.write_json(os.path.join(candidate, PARENT_FILE), {
            "checkpoint": os.path.abspath(parent), "epoch": epoch}, indent=1)
    return candidate


def read_parent(run_dir):
    """PARENT_FILE of run_dir as a dict, or None for a run started afresh."""
    path = os.path.join(run_dir, PARENT_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def checkpoint_epoch(model_path):
    """The epoch number of one of our checkpoint paths (1-based; also the
    0-based Keras epoch to run next), or 0 for any other path."""
    match = CHECKPOINT_RE.match(str(model_path)) if model_path else None
    return int(match.group(6)) if match else 0


def run_of(model_path, model_dir, name):
    """(epoch, log_dir, continues): where training from model_path goes.

    model_path: None (a new run) or a weights file. The epoch count goes
    on from one of our checkpoints' epoch (else 0). continues is True when
    model_path is the last epoch checkpoint of one of NAME's run folders
    under model_dir: training goes on in that folder (log_dir). Otherwise
    log_dir is new_run_dir's, to be created by create_run_dir, so that no
    later epoch of the checkpoint's run is overwritten.
    """
    epoch = checkpoint_epoch(model_path)
    if epoch and _is_last_of_run(model_path, model_dir, name):
        run_name = os.path.basename(os.path.dirname(
            os.path.abspath(model_path)))
        return epoch, os.path.join(model_dir, run_name), True
    return epoch, new_run_dir(model_dir, name), False


def _is_last_of_run(model_path, model_dir, name):
    # The folder's real path, not the file's: a linked file stays in it.
    run_dir = os.path.realpath(os.path.dirname(os.path.abspath(model_path)))
    if os.path.realpath(model_dir) != os.path.dirname(run_dir):
        return False
    if not _run_dir_re(name).match(os.path.basename(run_dir)) or \
            not os.path.isdir(run_dir):
        return False
    checkpoints = epoch_checkpoints(run_dir)
    return bool(checkpoints) and \
        checkpoints[-1] == os.path.basename(model_path)
