"""ResNet backbones and the Feature Pyramid Network (FPN).

Same functions and Keras layer names as matterport's ``mrcnn.model``
(``conv1``, ``bn_conv1``, ``res2a_branch2a``, ``bn2a_branch2a`` ...,
``fpn_c5p5`` ... ``fpn_p6``), so matterport's COCO weights and the
ImageNet ResNet50 weights it started from load by layer name.

Feature map strides: C1 4 (after the stem's max pool), C2 4, C3 8, C4 16,
C5 32; P2..P5 keep the strides of C2..C5 and P6 has stride 64.
"""

import keras


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
    """

    def __init__(self, train_bn=None, **kwargs):
        super().__init__(**kwargs)
        self.train_bn = train_bn

    def call(self, inputs, training=None, mask=None):
        if self.train_bn is False:
            training = False
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self.train_bn
        return config


############################################################
#  ResNet
############################################################

def _block_names(stage, block):
    """Conv and BN name prefixes of a residual block, e.g. res2a_branch."""
    return ("res{}{}_branch".format(stage, block),
            "bn{}{}_branch".format(stage, block))


def identity_block(input_tensor, kernel_size, filters, stage, block,
                   use_bias=True, train_bn=True):
    """Bottleneck block whose shortcut is the input itself.

    input_tensor: [batch, H, W, filters[2]] (channels must already match).
    kernel_size: kernel of the middle conv.
    filters: [nb_filter1, nb_filter2, nb_filter3] of the 1x1, kxk, 1x1 convs.
    stage: stage number (2..5); block: block letter ('a', 'b', ...).
    Returns: [batch, H, W, filters[2]].
    """
    nb_filter1, nb_filter2, nb_filter3 = filters
    conv_name, bn_name = _block_names(stage, block)

    x = keras.layers.Conv2D(nb_filter1, (1, 1), name=conv_name + "2a",
                            use_bias=use_bias)(input_tensor)
    x = BatchNorm(train_bn=train_bn, name=bn_name + "2a")(x)
    x = keras.layers.Activation("relu")(x)

    x = keras.layers.Conv2D(nb_filter2, (kernel_size, kernel_size),
                            padding="same", name=conv_name + "2b",
                            use_bias=use_bias)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name + "2b")(x)
    x = keras.layers.Activation("relu")(x)

    x = keras.layers.Conv2D(nb_filter3, (1, 1), name=conv_name + "2c",
                            use_bias=use_bias)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name + "2c")(x)

    x = keras.layers.Add()([x, input_tensor])
    return keras.layers.Activation(
        "relu", name="res{}{}_out".format(stage, block))(x)


def conv_block(input_tensor, kernel_size, filters, stage, block,
               strides=(2, 2), use_bias=True, train_bn=True):
    """Bottleneck block with a 1x1 projection shortcut (res{stage}a_branch1).

    The stride sits on the first 1x1 conv, as in matterport and the
    original Caffe ResNet whose ImageNet weights we load.
    input_tensor: [batch, H, W, C].
    Returns: [batch, H / stride, W / stride, filters[2]].
    """
    nb_filter1, nb_filter2, nb_filter3 = filters
    conv_name, bn_name = _block_names(stage, block)

    x = keras.layers.Conv2D(nb_filter1, (1, 1), strides=strides,
                            name=conv_name + "2a",
                            use_bias=use_bias)(input_tensor)
    x = BatchNorm(train_bn=train_bn, name=bn_name + "2a")(x)
    x = keras.layers.Activation("relu")(x)

    x = keras.layers.Conv2D(nb_filter2, (kernel_size, kernel_size),
                            padding="same", name=conv_name + "2b",
                            use_bias=use_bias)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name + "2b")(x)
    x = keras.layers.Activation("relu")(x)

    x = keras.layers.Conv2D(nb_filter3, (1, 1), name=conv_name + "2c",
                            use_bias=use_bias)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name + "2c")(x)

    shortcut = keras.layers.Conv2D(nb_filter3, (1, 1), strides=strides,
                                   name=conv_name + "1",
                                   use_bias=use_bias)(input_tensor)
    shortcut = BatchNorm(train_bn=train_bn, name=bn_name + "1")(shortcut)

    x = keras.layers.Add()([x, shortcut])
    return keras.layers.Activation(
        "relu", name="res{}{}_out".format(stage, block))(x)


def basic_block(input_tensor, filters, stage, block, strides=(1, 1),
                use_bias=True, train_bn=True):
    """ResNet-18/34 block: two 3x3 convs (branch2a, branch2b) plus shortcut.

    The shortcut is a 1x1 projection (res{stage}{block}_branch1) only where
    the stride or the channel count changes, the identity otherwise.
    input_tensor: [batch, H, W, C].
    Returns: [batch, H / stride, W / stride, filters].
    """
    conv_name, bn_name = _block_names(stage, block)

    x = keras.layers.Conv2D(filters, (3, 3), strides=strides, padding="same",
                            name=conv_name + "2a",
                            use_bias=use_bias)(input_tensor)
    x = BatchNorm(train_bn=train_bn, name=bn_name + "2a")(x)
    x = keras.layers.Activation("relu")(x)

    x = keras.layers.Conv2D(filters, (3, 3), padding="same",
                            name=conv_name + "2b", use_bias=use_bias)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name + "2b")(x)

    needs_projection = (tuple(strides) != (1, 1)
                        or input_tensor.shape[-1] != filters)
    if needs_projection:
        shortcut = keras.layers.Conv2D(filters, (1, 1), strides=strides,
                                       name=conv_name + "1",
                                       use_bias=use_bias)(input_tensor)
        shortcut = BatchNorm(train_bn=train_bn, name=bn_name + "1")(shortcut)
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


def _stem(input_image, train_bn):
    """Stage 1: 7x7/2 conv and 3x3/2 max pool. Returns C1 (stride 4)."""
    x = keras.layers.ZeroPadding2D((3, 3))(input_image)
    x = keras.layers.Conv2D(64, (7, 7), strides=(2, 2), name="conv1",
                            use_bias=True)(x)
    x = BatchNorm(train_bn=train_bn, name="bn_conv1")(x)
    x = keras.layers.Activation("relu")(x)
    return keras.layers.MaxPooling2D((3, 3), strides=(2, 2),
                                     padding="same")(x)


def _bottleneck_stage(x, architecture, stage, train_bn):
    filters = _BOTTLENECK_FILTERS[stage]
    # Stage 2 follows the max pool, which already downsampled.
    strides = (1, 1) if stage == 2 else (2, 2)
    x = conv_block(x, 3, filters, stage=stage, block="a", strides=strides,
                   train_bn=train_bn)
    for i in range(_BOTTLENECK_BLOCKS[architecture][stage]):
        x = identity_block(x, 3, filters, stage=stage,
                           block=_block_letter(i + 1), train_bn=train_bn)
    return x


def _basic_stage(x, stage, train_bn):
    strides = (1, 1) if stage == 2 else (2, 2)
    x = basic_block(x, _BASIC_FILTERS[stage], stage, "a", strides=strides,
                    train_bn=train_bn)
    return basic_block(x, _BASIC_FILTERS[stage], stage, "b",
                       train_bn=train_bn)


def resnet_graph(input_image, architecture, stage5=False, train_bn=True):
    """Builds a ResNet and returns the outputs of its stages.

    input_image: [batch, H, W, channels] KerasTensor; H and W multiples of
        32 (64 for the FPN's P6).
    architecture: "resnet50", "resnet101" (bottleneck blocks, matterport's
        graph) or "resnet18" (basic blocks, a light backbone for CPU runs).
    stage5: build stage 5 (C5); otherwise C5 is None, as in matterport.
    train_bn: passed to every BatchNorm layer (see BatchNorm).
    Returns: [C1, C2, C3, C4, C5] with strides 4, 4, 8, 16, 32 and channels
        64, 256, 512, 1024, 2048 (resnet50/101) or 64, 64, 128, 256, 512
        (resnet18).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError("resnet_graph: architecture must be one of {}, got "
                         "{!r}".format(ARCHITECTURES, architecture))
    c1 = x = _stem(input_image, train_bn)
    stages = [2, 3, 4, 5] if stage5 else [2, 3, 4]
    outputs = []
    for stage in stages:
        if architecture == "resnet18":
            x = _basic_stage(x, stage, train_bn)
        else:
            x = _bottleneck_stage(x, architecture, stage, train_bn)
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
        return keras.layers.Conv2D(pyramid_size, (1, 1),
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
        return keras.layers.Conv2D(pyramid_size, (3, 3), padding="same",
                                   name="fpn_p{}".format(level))(p)

    p2, p3, p4, p5 = [smooth(p, level)
                      for p, level in ((p2, 2), (p3, 3), (p4, 4), (p5, 5))]
    p6 = keras.layers.MaxPooling2D(pool_size=(1, 1), strides=2,
                                   name="fpn_p6")(p5)
    return [p2, p3, p4, p5, p6]
