"""imgaug imported after any public mrcnn module works on numpy 2.

Each case runs in a fresh interpreter: the numpy names imgaug needs must
come from importing mrcnn alone, not from an earlier test.
"""
import subprocess
import sys

import pytest

PUBLIC_MODULES = ["mrcnn", "mrcnn.config", "mrcnn.utils", "mrcnn.model",
                  "mrcnn.visualize"]

# A user script as the original's nucleus sample starts: mrcnn first, then
# imgaug. It flips an image and its mask and checks both against numpy.
SCRIPT = """
import sys
import numpy as np
import {module}
assert "imgaug" not in sys.modules, "importing {module} imported imgaug"
import imgaug.augmenters as iaa
from imgaug.augmentables.segmaps import SegmentationMapsOnImage

image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
mask = np.zeros((6, 8), dtype=np.int32)
mask[1:3, 0:2] = 1
flipped, flipped_mask = iaa.Fliplr(1.0)(
    image=image, segmentation_maps=SegmentationMapsOnImage(mask, (6, 8)))
assert np.array_equal(flipped, image[:, ::-1])
assert np.array_equal(flipped_mask.get_arr(), mask[:, ::-1])
print("ok")
"""


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_imgaug_imports_and_augments_after_mrcnn(module):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(module=module)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_imgaug_alone_still_fails_on_numpy_2():
    """The check above is meaningful: without mrcnn, imgaug 0.4.0 cannot be
    imported on numpy 2 (on numpy 1 it can, and this test has no subject)."""
    import numpy as np
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("numpy 1 still has np.sctypes")
    result = subprocess.run(
        [sys.executable, "-c", "import imgaug.augmenters"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "sctypes" in result.stderr
