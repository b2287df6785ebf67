"""Files written whole or not at all.

Everything mrcnn writes that a later step reads back (checkpoints,
``run_config.json``, the JSON reports of the command line) goes through
here: the content is written under a temporary name in the destination's
folder, flushed to disk, and renamed over the destination in one step. A
crash, a full disk or a SIGTERM while writing leaves the previous file (or
no file) under the destination name, never half of one.
"""

import contextlib
import json
import os
import uuid


def temporary_name(path, suffix=".tmp"):
    """A unique hidden name in path's folder, ending with suffix.

    suffix matters for writers that check the file name (Keras wants
    ".weights.h5").
    """
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, ".{}.{}{}".format(
        base, uuid.uuid4().hex, suffix))


@contextlib.contextmanager
def replacing(path, suffix=".tmp"):
    """Context manager giving a temporary path to write; on a clean exit the
    file is renamed over path (os.replace is atomic on one file system), on
    any exception it is removed and path is left as it was."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = temporary_name(path, suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path, text):
    """Writes text to path atomically (UTF-8)."""
    with replacing(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, obj, **dump_kwargs):
    """Writes obj as JSON to path atomically; dump_kwargs go to json.dumps."""
    write_text(path, json.dumps(obj, **dump_kwargs))
