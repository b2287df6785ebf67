"""Every public name of matterport's mrcnn.utils, mrcnn.model, mrcnn.config
and mrcnn.visualize is importable from the same module here, and the names
this port had to add back do what the original's do.

The lists are the original modules' top-level functions, classes and
constants. Left out on purpose: the modules they imported under short names
(np, tf, KL, KE, KM, scipy, skimage ...) and visualize's ROOT_DIR, the
working-directory path the original appended to sys.path to find itself.
"""

import importlib
import inspect
import subprocess
import sys
import types

import numpy as np
import pytest

ORIGINAL_NAMES = {
    "mrcnn.utils": [
        "COCO_MODEL_URL",
        "extract_bboxes", "compute_iou", "compute_overlaps",
        "compute_overlaps_masks", "non_max_suppression", "apply_box_deltas",
        "box_refinement_graph", "box_refinement",
        "Dataset",
        "resize_image", "resize_mask", "minimize_mask", "expand_mask",
        "mold_mask", "unmold_mask",
        "generate_anchors", "generate_pyramid_anchors",
        "trim_zeros", "compute_matches", "compute_ap", "compute_ap_range",
        "compute_recall",
        "batch_slice", "download_trained_weights", "norm_boxes",
        "denorm_boxes", "resize",
    ],
    "mrcnn.model": [
        "log", "BatchNorm", "compute_backbone_shapes",
        "identity_block", "conv_block", "resnet_graph",
        "apply_box_deltas_graph", "clip_boxes_graph", "ProposalLayer",
        "log2_graph", "PyramidROIAlign",
        "overlaps_graph", "detection_targets_graph", "DetectionTargetLayer",
        "refine_detections_graph", "DetectionLayer",
        "rpn_graph", "build_rpn_model", "fpn_classifier_graph",
        "build_fpn_mask_graph",
        "smooth_l1_loss", "rpn_class_loss_graph", "rpn_bbox_loss_graph",
        "mrcnn_class_loss_graph", "mrcnn_bbox_loss_graph",
        "mrcnn_mask_loss_graph",
        "load_image_gt", "build_detection_targets", "build_rpn_targets",
        "generate_random_rois", "data_generator",
        "MaskRCNN",
        "compose_image_meta", "parse_image_meta", "parse_image_meta_graph",
        "mold_image", "unmold_image",
        "trim_zeros_graph", "batch_pack_graph", "norm_boxes_graph",
        "denorm_boxes_graph",
    ],
    "mrcnn.config": ["Config"],
    "mrcnn.visualize": [
        "display_images", "random_colors", "apply_mask", "display_instances",
        "display_differences", "draw_rois", "draw_box", "display_top_masks",
        "plot_precision_recall", "plot_overlaps", "draw_boxes",
        "display_table", "display_weight_stats",
    ],
}

CLASSES = {"Dataset", "MaskRCNN", "Config", "BatchNorm", "ProposalLayer",
           "PyramidROIAlign", "DetectionTargetLayer", "DetectionLayer"}
CONSTANTS = {"COCO_MODEL_URL"}


@pytest.mark.parametrize("module_name,name", [
    (module_name, name) for module_name, names in ORIGINAL_NAMES.items()
    for name in names])
def test_original_public_name_is_importable(module_name, name):
    module = importlib.import_module(module_name)
    value = getattr(module, name)  # `from module import name` does this
    if name in CLASSES:
        assert inspect.isclass(value)
    elif name in CONSTANTS:
        assert isinstance(value, str)
    else:
        assert callable(value) and not inspect.isclass(value)


def test_importing_utils_does_not_import_tensorflow():
    # box_refinement_graph is a TensorFlow op; mrcnn.utils loads it lazily.
    code = ("import sys, mrcnn.utils; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_utils_box_refinement_graph_is_the_twin_of_box_refinement():
    from mrcnn import utils
    boxes = np.array([[0, 0, 10, 10], [5, 5, 25, 15]], np.float32)
    gt_boxes = np.array([[2, 1, 12, 9], [5, 5, 45, 15]], np.float32)
    graph = np.asarray(utils.box_refinement_graph(boxes, gt_boxes))
    np.testing.assert_allclose(graph, utils.box_refinement(boxes, gt_boxes),
                               rtol=1e-6, atol=1e-6)
    # Hand-worked: the centre moves from y 15 to 25, half the height of 20,
    # and the height doubles -> (0.5, 0, log 2, 0).
    np.testing.assert_allclose(graph[1], [0.5, 0, np.log(2), 0], atol=1e-6)


def test_utils_unknown_attribute_still_raises_attribute_error():
    from mrcnn import utils
    with pytest.raises(AttributeError, match="no_such_helper"):
        utils.no_such_helper


def _mini_mask_config(use_mini_mask):
    return types.SimpleNamespace(USE_MINI_MASK=use_mini_mask,
                                 MINI_MASK_SHAPE=(8, 8))


def test_mold_mask_makes_mini_masks_that_expand_back():
    from mrcnn import utils
    mask = np.zeros((32, 40, 2), dtype=bool)
    mask[4:12, 8:24, 0] = True      # 8 x 16 rectangle
    mask[16:32, 0:16, 1] = True     # 16 x 16 square on the border
    mini = utils.mold_mask(mask, _mini_mask_config(True))
    assert mini.shape == (8, 8, 2) and mini.dtype == bool
    assert mini.all()  # a full rectangle fills its own box
    boxes = utils.extract_bboxes(mask)
    np.testing.assert_array_equal(boxes, [[4, 8, 12, 24], [16, 0, 32, 16]])
    np.testing.assert_array_equal(utils.expand_mask(boxes, mini, mask.shape),
                                  mask)


def test_mold_mask_without_mini_masks_keeps_full_masks():
    from mrcnn import utils
    mask = np.zeros((6, 5, 1), dtype=np.uint8)
    mask[1:3, 2:4, 0] = 1
    molded = utils.mold_mask(mask, _mini_mask_config(False))
    assert molded.dtype == bool and molded.shape == (6, 5, 1)
    np.testing.assert_array_equal(molded, mask.astype(bool))


def test_mold_mask_names_an_empty_instance():
    from mrcnn import utils
    mask = np.zeros((6, 6, 2), dtype=bool)
    mask[0:2, 0:2, 0] = True
    with pytest.raises(ValueError, match="instance 1"):
        utils.mold_mask(mask, _mini_mask_config(True))


def test_log2_graph():
    from mrcnn import model as modellib
    values = np.array([0.125, 1.0, 3.0, 1024.0], np.float32)
    np.testing.assert_allclose(np.asarray(modellib.log2_graph(values)),
                               [-3, 0, np.log2(3.0), 10], rtol=1e-6)


def test_refine_detections_graph_hand_worked():
    from mrcnn import model as modellib
    config = types.SimpleNamespace(
        DETECTION_MAX_INSTANCES=4, DETECTION_MIN_CONFIDENCE=0.7,
        DETECTION_NMS_THRESHOLD=0.3, BBOX_STD_DEV=(0.1, 0.1, 0.2, 0.2))
    rois = np.array([[0, 0, .5, .5], [.5, .5, 1, 1], [0, 0, .5, .5],
                     [.05, .05, .5, .5]], np.float32)
    probs = np.array([[.1, .9], [.2, .8], [.6, .4], [.15, .85]], np.float32)
    deltas = np.zeros([4, 2, 4], np.float32)
    # ROI 1, class 1: dy = 1 * std 0.1 * height 0.5 moves it 0.05 down,
    # then the window [0, 0, 1, 1] clips its bottom back to 1.
    deltas[1, 1, 0] = 1.0
    detections = np.asarray(modellib.refine_detections_graph(
        rois, probs, deltas, np.array([0, 0, 1, 1], np.float32), config))
    # ROI 2 is background; ROI 3 (score .85) overlaps ROI 0 (.9) with
    # IoU 0.45^2 / 0.25 = 0.81 > 0.3 and is suppressed.
    expected = np.array([[0, 0, .5, .5, 1, .9],
                         [.55, .5, 1, 1, 1, .8],
                         [0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(detections, expected, atol=1e-6)
