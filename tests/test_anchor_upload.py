"""detect() sends the anchors to the device once per molded shape and
batch size, not on every call: counted at the one place that makes the
tensor, and checked by identity of what reaches the graph."""

import numpy as np

from mrcnn import model as modellib
from mrcnn.inference import molding
from tests.tiny import TinyConfig


class InferenceConfig(TinyConfig):
    NAME = "anchors"
    IMAGES_PER_GPU = 2


def test_repeated_detect_uploads_anchors_once_per_shape(tmp_path,
                                                        monkeypatch):
    uploads = []
    upload = molding.upload_anchors

    def counting(anchors):
        uploads.append(anchors.shape)
        return upload(anchors)
    monkeypatch.setattr(molding, "upload_anchors", counting)

    model = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    reached = []
    predict = model._predict

    def recording(images, metas, anchors):
        reached.append(anchors)
        return predict(images, metas, anchors)
    model._predict = recording

    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    results = [model.detect([image]) for _ in range(3)]
    num_anchors = model.get_anchors((64, 64, 3)).shape[0]
    assert uploads == [(2, num_anchors, 4)]
    assert reached[0] is reached[1] is reached[2]
    np.testing.assert_array_equal(reached[0].numpy()[1],
                                  model.get_anchors((64, 64, 3)))
    for a, b in zip(results[0][0].values(), results[2][0].values()):
        np.testing.assert_array_equal(a, b)

    # Another batch size is another tensor, made once too.
    molded, metas, _ = model.mold_inputs([image])
    for _ in range(2):
        model.detect_molded(molded, metas)
    assert uploads == [(2, num_anchors, 4), (1, num_anchors, 4)]
    model.detect([image])
    assert len(uploads) == 2
