"""Subprocess for tests/test_data_workers.py: a feed with worker processes
under the training run's SIGTERM handling, to be killed.

``python _feed_worker.py LOG_DIR`` starts a MaskRCNNDataset with two
worker processes, builds batches until its workers are up, prints
``WORKERS pid pid`` and goes on building batches inside
``termination.sigterm_stops_cleanly`` (as ``MaskRCNN.train`` runs
``fit``), closing the feed on the way out, until it is signalled.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

from mrcnn import data  # noqa: E402
from mrcnn.training import termination  # noqa: E402
from tests.test_data import RectanglesDataset, TinyConfig, random_specs  # noqa: E402,E501


def main(log_dir):
    dataset = RectanglesDataset(random_specs(6, seed=1))
    feed = data.MaskRCNNDataset(dataset, TinyConfig(), seed=0, workers=2,
                                use_multiprocessing=True)
    with termination.sigterm_stops_cleanly(log_dir):
        try:
            feed[0], feed[1]
            pids = [p.pid for p in feed.worker_pool().processes()]
            print("WORKERS", *pids, flush=True)
            index = 0
            while True:
                feed[index % len(feed)]
                index += 1
        finally:
            feed.close()


if __name__ == "__main__":
    main(sys.argv[1])
