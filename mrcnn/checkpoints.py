"""Where checkpoints live, and finding the last one.

Each training run writes to ``<model_dir>/<name><YYYYmmddTHHMM>/`` files
named ``mask_rcnn_<name>_<epoch>.weights.h5`` (epoch 1-based, 4 digits);
legacy ``.h5`` files of the same names are recognised too.
"""

import datetime
import errno
import os
import re

# Checkpoints: <model_dir>/<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch>.weights.h5
CHECKPOINT_RE = re.compile(
    r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]"
    r"mask\_rcnn\_[\w-]+(\d{4})(\.weights)?\.h5$")


BEST_SUFFIX = "_best.weights.h5"


def is_best_checkpoint(filename):
    """True for the best-model file (train(monitor=...)), which is not an
    epoch checkpoint."""
    return filename.endswith(BEST_SUFFIX)


def find_last_checkpoint(model_dir, name):
    """Path of the newest checkpoint of the last run of config NAME name.

    Runs that crashed before their first checkpoint are passed over. Raises
    FileNotFoundError naming model_dir when there is none.
    """
    name = name.lower()
    # NAME + timestamp exactly: "balloon" must not pick "balloon_big" runs.
    run_dir = re.compile(re.escape(name) + r"\d{8}T\d{4}$")
    if os.path.isdir(model_dir):
        dir_names = sorted(d for d in os.listdir(model_dir)
                           if run_dir.match(d)
                           and os.path.isdir(os.path.join(model_dir, d)))
    else:
        dir_names = []
    for dir_name in reversed(dir_names):
        dir_path = os.path.join(model_dir, dir_name)
        checkpoints = sorted(f for f in os.listdir(dir_path)
                             if f.startswith("mask_rcnn")
                             and not is_best_checkpoint(f)
                             and (f.endswith(".weights.h5")
                                  or f.endswith(".h5")))
        if checkpoints:
            return os.path.join(dir_path, checkpoints[-1])
    raise FileNotFoundError(
        errno.ENOENT,
        "Could not find a checkpoint of {!r} under model_dir".format(name),
        model_dir)


def run_start_and_epoch(model_path):
    """(start time of the run, next epoch) of one of our checkpoint paths.

    The epoch number in the file is 1-based, Keras' 0-based: the next epoch
    to run is the file's number. Returns (None, 0) for any other path.
    """
    match = CHECKPOINT_RE.match(str(model_path)) if model_path else None
    if not match:
        return None, 0
    start = datetime.datetime(*[int(match.group(i)) for i in range(1, 6)])
    return start, int(match.group(6))
