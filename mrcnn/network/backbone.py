"""ResNet backbones and the Feature Pyramid Network (FPN).

Same functions and Keras layer names as matterport's ``mrcnn.model``
(``conv1``, ``bn_conv1``, ``res2a_branch2a``, ``bn2a_branch2a`` ...,
``fpn_c5p5`` ... ``fpn_p6``), so matterport's COCO weights and the
ImageNet ResNet50 weights it started from load by layer name.

Feature map strides: C1 4 (after the stem's max pool), C2 4, C3 8, C4 16,
C5 32; P2..P5 keep the strides of C2..C5 and P6 has stride 64.
"""

import weakref

import keras
from keras import ops

from mrcnn.network.conv import Conv2D
from mrcnn.network.layer_names import FPN_OUTPUT


############################################################
#  Batch normalization
############################################################

@keras.saving.register_keras_serializable(package="mrcnn")
class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization whose training mode can be frozen at build time.

    Mask R-CNN trains with small batches (often 1-2 images), where batch
    statistics are too noisy, so the usual choice is to keep the ImageNet
    moving statistics: ``train_bn=False``.

    train_bn: False: always inference mode (moving mean/variance are used
        and never updated), whatever ``training`` the layer is called with.
        True or None: follow the ``training`` flag of the call, i.e. batch
        statistics (and moving average updates) in training and moving
        statistics in inference.
    fold: when the preceding FoldableConv2D was linked to this layer (see
        conv_bn) and a call uses the moving statistics, the convolution
        applies the normalization through its kernel and bias and this
        layer passes its input through. The weights stay this layer's.
    """

    def __init__(self, train_bn=None, fold=True, **kwargs):
        super().__init__(**kwargs)
        self.train_bn = train_bn
        self.fold = bool(fold)
        self.folded_into_conv = False

    def uses_moving_statistics(self, training):
        """Whether a call with `training` normalizes with the moving mean
        and variance (as Keras' BatchNormalization decides)."""
        return self.train_bn is False or not training or not self.trainable

    def is_folded(self, training):
        """Whether a call with `training` is applied by the convolution."""
        return (self.fold and self.folded_into_conv
                and self.uses_moving_statistics(training))

    def affine(self):
        """The moving-statistics normalization as y = x * scale + offset:
        (scale [channels], offset [channels]), float32."""
        variance = ops.cast(self.moving_variance, "float32")
        scale = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * ops.cast(self.gamma, "float32")
        offset = -ops.cast(self.moving_mean, "float32") * scale
        if self.center:
            offset = offset + ops.cast(self.beta, "float32")
        return scale, offset

    def call(self, inputs, training=None, mask=None):
        if self.train_bn is False:
            training = False
        if self.is_folded(training):
            return inputs
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self.train_bn
        config["fold"] = self.fold
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class FoldableConv2D(Conv2D):
    """Conv2D that applies the frozen BatchNorm after it through its own
    kernel and bias: conv(x, W * s) + (b * s + o) for the normalization
    y = x * s + o (BatchNorm.affine). Same weights as a Conv2D.

    Where the batch norm uses its moving statistics (TRAIN_BN False,
    inference, frozen layers), this saves the normalization's passes over
    the activations, forward and backward; the gradients of the kernel,
    bias, gamma and beta are those of the unfolded pair (the fold is
    differentiable). Elsewhere it is a plain Conv2D and the BatchNorm
    normalizes as usual. Its ops are those of mrcnn.network.conv.Conv2D.
    """

    def link_batch_norm(self, batch_norm):
        """Folds `batch_norm` (a BatchNorm fed by this layer alone)."""
        # A weak reference keeps it out of Keras' layer tracking and weight
        # saving: the BatchNorm stays its own layer with its own weights
        # (names and weight files unchanged).
        object.__setattr__(self, "_batch_norm_ref", weakref.ref(batch_norm))
        batch_norm.folded_into_conv = True

    def call(self, inputs, training=None):
        ref = getattr(self, "_batch_norm_ref", None)
        batch_norm = ref() if ref is not None else None
        if batch_norm is None or not batch_norm.is_folded(training):
            return super().call(inputs)
        scale, offset = batch_norm.affine()
        kernel = ops.cast(self.kernel, "float32") * scale
        bias = offset
        if self.use_bias:
            bias = bias + ops.cast(self.bias, "float32") * scale
        outputs = self.convolution_op(
            inputs, ops.cast(kernel, self.compute_dtype))
        outputs = ops.add(outputs, ops.reshape(
            ops.cast(bias, self.compute_dtype), (1, 1, 1, self.filters)))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


def conv_bn(inputs, filters, kernel_size, conv_name, bn_name, train_bn,
            fold_bn=True, **conv_kwargs):
    """FoldableConv2D `conv_name` then BatchNorm `bn_name`, linked so that
    the convolution applies the normalization where it is frozen.

    inputs: [batch, H, W, C]. Returns [batch, H', W', filters].
    """
    conv = FoldableConv2D(filters, kernel_size, name=conv_name, **conv_kwargs)
    batch_norm = BatchNorm(train_bn=train_bn, fold=fold_bn, name=bn_name)
    conv.link_batch_norm(batch_norm)
    return batch_norm(conv(inputs))


############################################################
#  ResNet
############################################################

def _block_names(stage, block):
    """Conv and BN name prefixes of a residual block, e.g. res2a_branch."""
    return ("res{}{}_branch".format(stage, block),
            "bn{}{}_branch".format(stage, block))


def identity_block(input_tensor, kernel_size, filters, stage, block,
                   use_bias=True, train_bn=True, fold_bn=True):
    """Bottleneck block whose shortcut is the input itself.

    input_tensor: [batch, H, W, filters[2]] (channels must already match).
    kernel_size: kernel of the middle conv.
    filters: [nb_filter1, nb_filter2, nb_filter3] of the 1x1, kxk, 1x1 convs.
    stage: stage number (2..5); block: block letter ('a', 'b', ...).
    train_bn, fold_bn: see BatchNorm.
    Returns: [batch, H, W, filters[2]].
    """
    nb_filter1, nb_filter2, nb_filter3 = filters
    conv_name, bn_name = _block_names(stage, block)
    norm = dict(train_bn=train_bn, fold_bn=fold_bn, use_bias=use_bias)

    x = conv_bn(input_tensor, nb_filter1, (1, 1), conv_name + "2a",
                bn_name + "2a", **norm)
    x = keras.layers.Activation("relu")(x)
    x = conv_bn(x, nb_filter2, (kernel_size, kernel_size), conv_name + "2b",
                bn_name + "2b", padding="same", **norm)
    x = keras.layers.Activation("relu")(x)
    x = conv_bn(x, nb_filter3, (1, 1), conv_name + "2c", bn_name + "2c",
                **norm)

    x = keras.layers.Add()([x, input_tensor])
    return keras.layers.Activation(
        "relu", name="res{}{}_out".format(stage, block))(x)


def conv_block(input_tensor, kernel_size, filters, stage, block,
               strides=(2, 2), use_bias=True, train_bn=True, fold_bn=True):
    """Bottleneck block with a 1x1 projection shortcut (res{stage}a_branch1).

    The stride sits on the first 1x1 conv, as in matterport and the
    original Caffe ResNet whose ImageNet weights we load.
    input_tensor: [batch, H, W, C].
    Returns: [batch, H / stride, W / stride, filters[2]].
    """
    nb_filter1, nb_filter2, nb_filter3 = filters
    conv_name, bn_name = _block_names(stage, block)
    norm = dict(train_bn=train_bn, fold_bn=fold_bn, use_bias=use_bias)

    x = conv_bn(input_tensor, nb_filter1, (1, 1), conv_name + "2a",
                bn_name + "2a", strides=strides, **norm)
    x = keras.layers.Activation("relu")(x)
    x = conv_bn(x, nb_filter2, (kernel_size, kernel_size), conv_name + "2b",
                bn_name + "2b", padding="same", **norm)
    x = keras.layers.Activation("relu")(x)
    x = conv_bn(x, nb_filter3, (1, 1), conv_name + "2c", bn_name + "2c",
                **norm)
    shortcut = conv_bn(input_tensor, nb_filter3, (1, 1), conv_name + "1",
                       bn_name + "1", strides=strides, **norm)

    x = keras.layers.Add()([x, shortcut])
    return keras.layers.Activation(
        "relu", name="res{}{}_out".format(stage, block))(x)


def basic_block(input_tensor, filters, stage, block, strides=(1, 1),
                use_bias=True, train_bn=True, fold_bn=True):
    """ResNet-18/34 block: two 3x3 convs (branch2a, branch2b) plus shortcut.

    The shortcut is a 1x1 projection (res{stage}{block}_branch1) only where
    the stride or the channel count changes, the identity otherwise.
    input_tensor: [batch, H, W, C].
    Returns: [batch, H / stride, W / stride, filters].
    """
    conv_name, bn_name = _block_names(stage, block)
    norm = dict(train_bn=train_bn, fold_bn=fold_bn, use_bias=use_bias)

    x = conv_bn(input_tensor, filters, (3, 3), conv_name + "2a",
                bn_name + "2a", strides=strides, padding="same", **norm)
    x = keras.layers.Activation("relu")(x)
    x = conv_bn(x, filters, (3, 3), conv_name + "2b", bn_name + "2b",
                padding="same", **norm)

    needs_projection = (tuple(strides) != (1, 1)
                        or input_tensor.shape[-1] != filters)
    if needs_projection:
        shortcut = conv_bn(input_tensor, filters, (1, 1), conv_name + "1",
                           bn_name + "1", strides=strides, **norm)
    else:
        shortcut = input_tensor

    x = keras.layers.Add()([x, shortcut])
    return keras.layers.Activation(
        "relu", name="res{}{}_out".format(stage, block))(x)


# Identity blocks after the first (projection) block of stages 2..5.
_BOTTLENECK_BLOCKS = {
    "resnet50": {2: 2, 3: 3, 4: 5, 5: 2},
    "resnet101": {2: 2, 3: 3, 4: 22, 5: 2},
}
_BOTTLENECK_FILTERS = {2: [64, 64, 256], 3: [128, 128, 512],
                       4: [256, 256, 1024], 5: [512, 512, 2048]}
_BASIC_FILTERS = {2: 64, 3: 128, 4: 256, 5: 512}
ARCHITECTURES = ("resnet18", "resnet50", "resnet101")


def _block_letter(index):
    """0 -> 'a', 1 -> 'b', ... (resnet101's stage 4 goes up to 'w')."""
    return chr(ord("a") + index)


def _stem(input_image, train_bn, fold_bn):
    """Stage 1: 7x7/2 conv and 3x3/2 max pool. Returns C1 (stride 4)."""
    x = keras.layers.ZeroPadding2D((3, 3))(input_image)
    x = conv_bn(x, 64, (7, 7), "conv1", "bn_conv1", train_bn, fold_bn,
                strides=(2, 2), use_bias=True)
    x = keras.layers.Activation("relu")(x)
    return keras.layers.MaxPooling2D((3, 3), strides=(2, 2),
                                     padding="same")(x)


def _bottleneck_stage(x, architecture, stage, train_bn, fold_bn):
    filters = _BOTTLENECK_FILTERS[stage]
    # Stage 2 follows the max pool, which already downsampled.
    strides = (1, 1) if stage == 2 else (2, 2)
    x = conv_block(x, 3, filters, stage=stage, block="a", strides=strides,
                   train_bn=train_bn, fold_bn=fold_bn)
    for i in range(_BOTTLENECK_BLOCKS[architecture][stage]):
        x = identity_block(x, 3, filters, stage=stage,
                           block=_block_letter(i + 1), train_bn=train_bn,
                           fold_bn=fold_bn)
    return x


def _basic_stage(x, stage, train_bn, fold_bn):
    strides = (1, 1) if stage == 2 else (2, 2)
    x = basic_block(x, _BASIC_FILTERS[stage], stage, "a", strides=strides,
                    train_bn=train_bn, fold_bn=fold_bn)
    return basic_block(x, _BASIC_FILTERS[stage], stage, "b",
                       train_bn=train_bn, fold_bn=fold_bn)


def resnet_graph(input_image, architecture, stage5=False, train_bn=True,
                 fold_bn=True):
    """Builds a ResNet and returns the outputs of its stages.

    input_image: [batch, H, W, channels] KerasTensor; H and W multiples of
        32 (64 for the FPN's P6).
    architecture: "resnet50", "resnet101" (bottleneck blocks, matterport's
        graph) or "resnet18" (basic blocks, a light backbone for CPU runs).
    stage5: build stage 5 (C5); otherwise C5 is None, as in matterport.
    train_bn: passed to every BatchNorm layer (see BatchNorm).
    fold_bn: let each convolution apply its batch norm where that is frozen
        (see FoldableConv2D; same numbers to float rounding).
    Returns: [C1, C2, C3, C4, C5] with strides 4, 4, 8, 16, 32 and channels
        64, 256, 512, 1024, 2048 (resnet50/101) or 64, 64, 128, 256, 512
        (resnet18).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError("resnet_graph: architecture must be one of {}, got "
                         "{!r}".format(ARCHITECTURES, architecture))
    c1 = x = _stem(input_image, train_bn, fold_bn)
    stages = [2, 3, 4, 5] if stage5 else [2, 3, 4]
    outputs = []
    for stage in stages:
        if architecture == "resnet18":
            x = _basic_stage(x, stage, train_bn, fold_bn)
        else:
            x = _bottleneck_stage(x, architecture, stage, train_bn, fold_bn)
        outputs.append(x)
    if not stage5:
        outputs.append(None)
    return [c1] + outputs


############################################################
#  Feature Pyramid Network
############################################################

def fpn_graph(C2, C3, C4, C5, pyramid_size=256):
    """Top-down FPN pathway with lateral 1x1 connections (matterport names).

    C2..C5: backbone outputs with strides 4, 8, 16, 32.
    pyramid_size: channels of every pyramid level (TOP_DOWN_PYRAMID_SIZE).
    Returns: [P2, P3, P4, P5, P6], each [batch, h_i, w_i, pyramid_size] with
        strides 4, 8, 16, 32, 64. P6 (a subsampled P5) is only used by the
        RPN, for the largest anchors.
    """
    def lateral(c, level):
        return Conv2D(pyramid_size, (1, 1),
                      name="fpn_c{0}p{0}".format(level))(c)

    def merge(upper, c, level):
        upsampled = keras.layers.UpSampling2D(
            size=(2, 2), name="fpn_p{}upsampled".format(level + 1))(upper)
        return keras.layers.Add(name="fpn_p{}add".format(level))(
            [upsampled, lateral(c, level)])

    p5 = lateral(C5, 5)
    p4 = merge(p5, C4, 4)
    p3 = merge(p4, C3, 3)
    p2 = merge(p3, C2, 2)

    # 3x3 convs on the merged maps reduce the aliasing of the upsampling.
    def smooth(p, level):
        return Conv2D(pyramid_size, (3, 3), padding="same",
                      name=FPN_OUTPUT.format(level))(p)

    p2, p3, p4, p5 = [smooth(p, level)
                      for p, level in ((p2, 2), (p3, 3), (p4, 4), (p5, 5))]
    p6 = keras.layers.MaxPooling2D(pool_size=(1, 1), strides=2,
                                   name=FPN_OUTPUT.format(6))(p5)
    return [p2, p3, p4, p5, p6]
