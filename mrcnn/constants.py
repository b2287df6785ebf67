"""The fixed names and numbers of the method that several stages share.

Not settings (those are ``Config``'s): values the original wrote as
literals in more than one place, written here once and imported by the
graph (``mrcnn.network``), the numpy twins (``mrcnn.data``,
``mrcnn.structures``), training and the configuration alike. Changing
one changes the method, for the graph and its numpy twin together.
"""

# The five losses, in the order of the training graph's last five outputs:
# the names of the loss layers (mrcnn.network.architecture), of the logged
# values (History, TensorBoard, the progress bar) and the keys of
# Config.LOSS_WEIGHTS.
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
              "mrcnn_bbox_loss", "mrcnn_mask_loss")

# The feature pyramid halves the image 6 times (P6 has stride 2 ** 6 = 64):
# a molded side that is no multiple of it would give the upsampled P(n+1)
# and the lateral C(n) different sizes in the FPN's additions.
PYRAMID_STRIDE = 2 ** 6

# Proposals (detection targets) and anchors (RPN targets) that overlap a
# crowd box with at least this IoU are never negatives: a box inside a
# crowd may well show an object. Graph: mrcnn.network.targets, numpy:
# mrcnn.data.rpn_targets (the original's 0.001 in both).
CROWD_IOU = 0.001

# IoU with a ground-truth box from which an ROI is a positive of the
# detection heads. The original compares differently in its two copies and
# both are kept, so that each reproduces its original's targets:
#   graph (DetectionTargetLayer, mrcnn.network.targets): positive IoU >= 0.5,
#       negative IoU < 0.5;
#   numpy (build_detection_targets, mrcnn.data.detection_targets): positive
#       IoU > 0.5, negative IoU < 0.5, so an ROI at exactly 0.5 is neither.
HEAD_POSITIVE_IOU = 0.5


def pyramid_size_error(name, size, where=""):
    """Why an image side can't go through the feature pyramid, or None.

    name: what the side is called in the message ("IMAGE_MAX_DIM").
    size: the side in pixels (int); 0 or None is no size either.
    where: words after "must be divisible by 64" (" in 'square' resize
        mode").
    Returns None for a positive multiple of PYRAMID_STRIDE, else the error
    message, with the nearest size that fits.
    """
    if size and size % PYRAMID_STRIDE == 0:
        return None
    nearest = max(PYRAMID_STRIDE, int(round((size or 0) / PYRAMID_STRIDE))
                  * PYRAMID_STRIDE)
    return ("{} = {} must be divisible by {}{} (the feature pyramid halves "
            "the image 6 times: use a multiple of {}), e.g. {}".format(
                name, size, PYRAMID_STRIDE, where, PYRAMID_STRIDE, nearest))
