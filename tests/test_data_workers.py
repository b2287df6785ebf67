"""Worker processes of the training feed (mrcnn.data.workers): the same
batches as in one process, errors that name the image, logs in the
parent, no process left behind, SIGTERM handling unchanged."""
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mrcnn import data
from mrcnn.data import workers
from test_data import (RectanglesDataset, TinyConfig, batches_equal,
                       random_specs)

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
END_TIMEOUT = 60  # s for a killed process's workers to end


class FlakyDataset(RectanglesDataset):
    """Rectangles whose image 8 cannot be read, whose image 10 ends the
    worker process that loads it (as the kernel's OOM killer would), and
    whose image 0 has no instances (the feed skips it)."""

    def load_image(self, image_id):
        if image_id == 8:
            raise OSError("truncated file")
        if image_id == 10 and multiprocessing.parent_process() is not None:
            os._exit(3)
        return super().load_image(image_id)


def flaky_dataset():
    specs = random_specs(11, seed=11)
    specs[0] = (64, 64, [])
    return FlakyDataset(specs)


def imgaug_augmentation():
    from mrcnn._imgaug_compat import import_imgaug
    iaa = import_imgaug().augmenters
    return iaa.Sequential([iaa.Fliplr(0.5),
                           iaa.Affine(rotate=(-20, 20), scale=(0.8, 1.2))])


@pytest.fixture(scope="module")
def feeds():
    """(in-process feed, feed with 2 worker processes), same seed; the
    processes start once for the module."""
    dataset = flaky_dataset()
    kwargs = dict(augmentation=imgaug_augmentation(), random_rois=10,
                  shuffle=False, seed=3)
    here = data.MaskRCNNDataset(dataset, TinyConfig(), **kwargs)
    there = data.MaskRCNNDataset(dataset, TinyConfig(), workers=2,
                                 use_multiprocessing=True, **kwargs)
    yield here, there
    there.close()


def good_batches(feed):
    """Batches 0..3 (images 8 and 10, the broken ones, are in batches 4
    and 5)."""
    return [feed[i] for i in range(4)]


def test_processes_give_the_batches_of_one_process(feeds, caplog):
    here, there = feeds
    # Batch 0 skips image 0 (no instances): its second slot starts again.
    for epoch in range(2):
        expected = good_batches(here)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mrcnn.data"):
            got = [there[i] for i in (3, 1, 0, 2)]
        if epoch == 0:  # a worker's warning, logged here once
            assert caplog.text.count("Skipping image 0 (rect-image-0)") == 1
        got = [got[2], got[1], got[3], got[0]]
        assert all(batches_equal(a, b) for a, b in zip(expected, got))
        assert [there.image_ids_of_batch(i) for i in range(4)] == \
            [here.image_ids_of_batch(i) for i in range(4)]
        assert here.image_ids_of_batch(0) == [1, 2]
        assert not batches_equal(expected[1], expected[2])
        here.on_epoch_end()
        there.on_epoch_end()


def test_worker_error_names_the_image_and_the_pool_goes_on(feeds):
    _, there = feeds
    with pytest.raises(workers.FeedWorkerError,
                       match=r"rect-image-8.*OSError: truncated file"):
        there[4]
    assert there.image_ids_of_batch(1) is not None
    there[1]  # the workers still serve


def test_a_worker_that_dies_stops_the_batch_and_new_ones_start(feeds):
    _, there = feeds
    with pytest.raises(workers.FeedWorkerError,
                       match=r"ended while building batch 5 from image 10 "):
        there[5]
    there[1]  # on new workers


def test_close_ends_the_workers(feeds):
    _, there = feeds
    processes = there.worker_pool().processes()
    assert len(processes) == 2 and all(p.is_alive() for p in processes)
    there.close()
    assert not any(p.is_alive() for p in processes)


def test_unpicklable_augmentation_is_refused_clearly():
    dataset = RectanglesDataset(random_specs(2, seed=2))

    class Local:  # pickle cannot find a class defined in a function
        pass
    feed = data.MaskRCNNDataset(dataset, TinyConfig(), workers=1,
                                use_multiprocessing=True,
                                augmentation=Local())
    with pytest.raises(ValueError, match="cannot be pickled"):
        feed[0]


def alive(pid):
    try:
        with open("/proc/{}/stat".format(pid)) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_signalled_training_process_leaves_no_worker(tmp_path, signum):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen(
        [sys.executable, os.path.join(TESTS_DIR, "_feed_worker.py"),
         str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env, text=True)
    try:
        line = process.stdout.readline()
        while line and not line.startswith("WORKERS"):
            line = process.stdout.readline()
        assert line, "the feed never started its workers"
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        process.send_signal(signum)
        output = process.communicate(timeout=END_TIMEOUT)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signum, output[-3000:]
    if signum == signal.SIGTERM:
        assert "Terminated (SIGTERM)" in output
    deadline = time.monotonic() + END_TIMEOUT
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids)
