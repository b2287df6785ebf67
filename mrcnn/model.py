"""Mask R-CNN: the model class users build, train and run.

    model = MaskRCNN(mode="training", config=config, model_dir=MODEL_DIR)
    model.load_weights(COCO_WEIGHTS, by_name=True, exclude=[
        "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
                epochs=30, layers="heads")

    model = MaskRCNN(mode="inference", config=config, model_dir=MODEL_DIR)
    model.load_weights(model.find_last(), by_name=True)
    r = model.detect([image])[0]   # rois, class_ids, scores, masks

The graph itself is assembled in ``mrcnn.architecture`` from one module per
stage; this module also re-exports the names that code written for the
original ``mrcnn.model`` imports from here.
"""

import contextlib
import datetime
import errno
import logging
import os
import re
from collections import OrderedDict

import numpy as np
import tensorflow as tf
import keras

from mrcnn import (architecture, best_model, distribute, postprocess,
                   runtime, tiling, training, utils)
from mrcnn import weights as weights_io
# Re-exports: the original mrcnn.model kept all of these in one file.
from mrcnn.backbone import BatchNorm, fpn_graph, resnet_graph  # noqa: F401
from mrcnn.box_ops import (apply_box_deltas_graph, batch_pack_graph,  # noqa: F401
                           box_refinement_graph, clip_boxes_graph,
                           denorm_boxes_graph, norm_boxes_graph,
                           overlaps_graph, parse_image_meta_graph,
                           trim_zeros_graph)
from mrcnn.data import (build_detection_targets, build_rpn_targets,  # noqa: F401
                        compose_image_meta, compute_backbone_shapes,
                        data_generator, generate_random_rois, load_image_gt,
                        mold_image, parse_image_meta, unmold_image,
                        MaskRCNNDataset, DataSequence)
from mrcnn.detection import DetectionLayer  # noqa: F401
from mrcnn.heads import build_fpn_mask_graph, fpn_classifier_graph  # noqa: F401
from mrcnn.losses import (mrcnn_bbox_loss_graph, mrcnn_class_loss_graph,  # noqa: F401
                          mrcnn_mask_loss_graph, rpn_bbox_loss_graph,
                          rpn_class_loss_graph)
from mrcnn.roi_align import PyramidROIAlign  # noqa: F401
from mrcnn.rpn import ProposalLayer, build_rpn_model, rpn_graph  # noqa: F401
from mrcnn.targets import DetectionTargetLayer  # noqa: F401

logger = logging.getLogger(__name__)

# Regular expressions for the `layers` argument of MaskRCNN.train().
LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}

# Checkpoints: <model_dir>/<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch>.weights.h5
CHECKPOINT_RE = re.compile(
    r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]"
    r"mask\_rcnn\_[\w-]+(\d{4})(\.weights)?\.h5$")


@contextlib.contextmanager
def precision_policy(name):
    """Builds layers under a Keras dtype policy, then restores the old one.

    name: None (float32), "mixed_float16" or "mixed_bfloat16". Layers keep
    the policy they were built with; box math, NMS and losses run in
    float32 inside their layers.
    """
    if not name:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def log(text, array=None):
    """Prints a text message and, for a numpy array, its shape, min and max."""
    if array is not None:
        text = text.ljust(25)
        text += "shape: {:20}  ".format(str(array.shape))
        if array.size:
            text += "min: {:10.5f}  max: {:10.5f}".format(array.min(), array.max())
        else:
            text += "min: {:10}  max: {:10}".format("", "")
        text += "  {}".format(array.dtype)
    print(text)


class MaskRCNN(object):
    """Encapsulates the Mask R-CNN model.

    The Keras model is in ``self.keras_model``.
    """

    def __init__(self, mode, config, model_dir, distribute_strategy=None):
        """
        mode: Either "training" or "inference"
        config: A Sub-class of the Config class
        model_dir: Directory to save training logs and trained weights
        distribute_strategy: a tf.distribute strategy to build and train
            under. By default GPU_COUNT > 1 gives MirroredStrategy over that
            many GPUs and a multi-worker TF_CONFIG gives
            MultiWorkerMirroredStrategy (see mrcnn.distribute).
        """
        if mode not in ("training", "inference"):
            raise ValueError("mode must be 'training' or 'inference', got "
                             "{!r}".format(mode))
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self.epoch = 0
        self._anchor_cache = {}
        self._detect_fn = None
        self.set_log_dir()
        # Before the first TensorFlow op: the pools are fixed after it.
        self.threads = runtime.configure(config.CPU_THREADS)
        self.precision = runtime.resolve_precision(config.MIXED_PRECISION)
        self.strategy = distribute.select_strategy(config, distribute_strategy)
        with self.strategy.scope(), precision_policy(self.precision):
            self.keras_model = self.build(mode=mode, config=config)

    # ------------------------------------------------------------------ build
    def build(self, mode, config):
        """Builds the Mask R-CNN Keras model for the given mode."""
        if mode == "training":
            inputs, outputs = architecture.build_training_graph(config)
            return training.MaskRCNNTrainingModel(
                inputs=inputs, outputs=outputs,
                loss_weights=config.LOSS_WEIGHTS,
                weight_decay=config.WEIGHT_DECAY, name="mask_rcnn")
        inputs, outputs = architecture.build_inference_graph(config)
        return keras.Model(inputs=inputs, outputs=outputs, name="mask_rcnn")

    # ---------------------------------------------------------------- weights
    def find_last(self):
        """Finds the last checkpoint of the last run of this configuration.

        Returns the path of the newest checkpoint. Runs that crashed before
        their first checkpoint are passed over.
        """
        name = self.config.NAME.lower()
        # NAME + timestamp exactly: "balloon" must not pick "balloon_big" runs.
        run_dir = re.compile(re.escape(name) + r"\d{8}T\d{4}$")
        if os.path.isdir(self.model_dir):
            dir_names = sorted(d for d in os.listdir(self.model_dir)
                               if run_dir.match(d)
                               and os.path.isdir(os.path.join(self.model_dir, d)))
        else:
            dir_names = []
        for dir_name in reversed(dir_names):
            dir_path = os.path.join(self.model_dir, dir_name)
            checkpoints = sorted(f for f in os.listdir(dir_path)
                                 if f.startswith("mask_rcnn")
                                 and not best_model.is_best_checkpoint(f)
                                 and (f.endswith(".weights.h5")
                                      or f.endswith(".h5")))
            if checkpoints:
                return os.path.join(dir_path, checkpoints[-1])
        raise FileNotFoundError(
            errno.ENOENT,
            "Could not find a checkpoint of {!r} under model_dir".format(name),
            self.model_dir)

    def load_weights(self, filepath, by_name=False, exclude=None):
        """Loads weights from our .weights.h5 checkpoints or legacy .h5 files.

        exclude: list of layer names to skip, e.g. the class-specific heads
        when the class count differs from the file's.
        """
        report = weights_io.load_weights(self.keras_model, filepath,
                                         by_name=by_name, exclude=exclude)
        # Continue the epoch count and log dir of a checkpoint of ours.
        self.set_log_dir(filepath)
        return report

    def get_imagenet_weights(self):
        """Downloads (or finds in the Keras cache) the ResNet50 ImageNet
        weights and returns their path."""
        return weights_io.get_imagenet_weights()

    def save_weights(self, filepath):
        weights_io.save_weights(self.keras_model, filepath)

    def set_log_dir(self, model_path=None):
        """Sets the log dir and epoch counter.

        With a path of one of our checkpoints, training continues in that
        run's directory from the epoch after the checkpoint's.
        """
        self.epoch = 0
        now = datetime.datetime.now()
        if model_path:
            match = CHECKPOINT_RE.match(str(model_path))
            if match:
                now = datetime.datetime(*[int(match.group(i))
                                          for i in range(1, 6)])
                # The epoch number in the file is 1-based, Keras' 0-based:
                # the next epoch to run is the file's number.
                self.epoch = int(match.group(6))
        self.log_dir = os.path.join(self.model_dir, "{}{:%Y%m%dT%H%M}".format(
            self.config.NAME.lower(), now))
        self.checkpoint_path = training.checkpoint_template(
            self.log_dir, self.config.NAME)

    # --------------------------------------------------------------- training
    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=1):
        """Sets layers trainable when their name fully matches layer_regex."""
        if verbose > 0 and keras_model is None:
            log("Selecting layers to train")
        return training.apply_trainable(keras_model or self.keras_model,
                                        layer_regex, verbose=verbose,
                                        indent=indent)

    def compile(self, learning_rate, momentum):
        """SGD with momentum and per-gradient norm clipping, no jit (the
        graph uses CropAndResize, which has no XLA kernel)."""
        distribute.check_global_batch(self.config, self.strategy)
        with self.strategy.scope():
            # Clips the gradient summed over replicas (see mrcnn.distribute).
            optimizer = distribute.GlobalGradientSGD(
                learning_rate=learning_rate, momentum=momentum,
                clipnorm=self.config.GRADIENT_CLIP_NORM)
            if self.precision == "mixed_float16":
                # float16 gradients underflow without loss scaling.
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.keras_model.compile(optimizer=optimizer, jit_compile=False)

    def export(self, export_dir):
        """Writes a SavedModel with a serving signature (see mrcnn.export)."""
        from mrcnn import export
        return export.export_saved_model(self, export_dir)

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None,
              no_augmentation_sources=None, workers=None, monitor=None,
              patience=None):
        """Trains the model.

        train_dataset, val_dataset: prepared Dataset objects (val may be None).
        learning_rate: The learning rate to train with.
        epochs: Number of training epochs. Previous training epochs count, so
            this is the epoch number to reach, not the number to add.
        layers: "heads", "3+", "4+", "5+", "all" or a regular expression on
            layer names selecting the layers to train.
        augmentation: an imgaug augmenter applied to images (and, for the
            geometric ones, to masks).
        custom_callbacks: extra Keras callbacks.
        no_augmentation_sources: dataset sources not to augment.
        workers: data-loading threads (default: one per available core, at
            most 4).
        monitor: None, "val_loss", "val_mask_ap50", "val_mask_ap",
            "val_bbox_ap50" or "val_bbox_ap": keep the best epoch's weights
            as mask_rcnn_<name>_best.weights.h5 (APs are evaluated on
            val_dataset after every epoch; see mrcnn.best_model).
        patience: with monitor, stop after this many epochs without
            improvement (None: never).
        Returns the Keras History.
        """
        if self.mode != "training":
            raise RuntimeError("Create the model in training mode to train.")
        layers = LAYER_REGEX.get(layers, layers)
        workers = workers or min(4, runtime.available_cores())
        train_feed = MaskRCNNDataset(
            train_dataset, self.config, shuffle=True,
            augmentation=augmentation,
            no_augmentation_sources=no_augmentation_sources,
            steps=self.config.STEPS_PER_EPOCH, workers=workers)
        val_feed = None
        if val_dataset is not None and self.config.VALIDATION_STEPS:
            val_feed = MaskRCNNDataset(
                val_dataset, self.config, shuffle=True,
                steps=self.config.VALIDATION_STEPS, workers=workers)

        os.makedirs(self.log_dir, exist_ok=True)
        stop_on_nan = training.StopOnNonFiniteLoss(train_feed)
        callbacks = [
            keras.callbacks.TensorBoard(log_dir=self.log_dir, histogram_freq=0,
                                        write_graph=False),
            stop_on_nan,
            training.CheckpointCallback(self.checkpoint_path),
        ] + best_model.training_callbacks(
            monitor, patience, self.log_dir, self.config.NAME, val_dataset,
            val_feed is not None, self._evaluation_twin) \
            + list(custom_callbacks or [])

        log("\nStarting at epoch {}. LR={}\n".format(self.epoch, learning_rate))
        log("Checkpoint Path: {}".format(self.checkpoint_path))
        log("Precision: {}, CPU threads: {}".format(
            self.precision or "float32", self.threads))
        self.set_trainable(layers)
        self.compile(learning_rate, self.config.LEARNING_MOMENTUM)
        history = self.keras_model.fit(
            train_feed, initial_epoch=self.epoch, epochs=epochs,
            steps_per_epoch=self.config.STEPS_PER_EPOCH,
            validation_data=val_feed,
            validation_steps=self.config.VALIDATION_STEPS if val_feed else None,
            callbacks=callbacks, verbose=1,
            # The feed shuffles its images itself; keeping Keras from
            # reordering batches lets errors name the batch's image ids.
            shuffle=False)
        finished = history.epoch[-1] + 1 if history.epoch else self.epoch
        if stop_on_nan.error is not None:
            raise stop_on_nan.error
        self.epoch = max(self.epoch, finished)
        return history

    def _evaluation_twin(self):
        """An inference model of the same config, for evaluations while
        training (weights copied in by the EvaluationCallback)."""
        return MaskRCNN("inference", best_model.inference_config(self.config),
                        self.model_dir)

    # -------------------------------------------------------------- inference
    def mold_inputs(self, images):
        """Resizes and normalizes images for the network.

        images: list of [H, W, C] images (uint8, or float in 0..255).
        Returns molded_images [N, h, w, C] float32, image_metas [N, META],
        windows [N, (y1, x1, y2, x2)] (the image inside the padded frame).
        """
        molded_images, image_metas, windows = [], [], []
        for index, image in enumerate(images):
            image = self._check_detect_image(image, index)
            molded_image, window, scale, _, _ = utils.resize_image(
                image,
                min_dim=self.config.IMAGE_MIN_DIM,
                min_scale=self.config.IMAGE_MIN_SCALE,
                max_dim=self.config.IMAGE_MAX_DIM,
                mode=self.config.IMAGE_RESIZE_MODE)
            molded_image = mold_image(molded_image, self.config)
            image_meta = compose_image_meta(
                0, image.shape, molded_image.shape, window, scale,
                np.zeros([self.config.NUM_CLASSES], dtype=np.int32))
            molded_images.append(molded_image)
            windows.append(window)
            image_metas.append(image_meta)
        return (np.stack(molded_images).astype(np.float32),
                np.stack(image_metas).astype(np.float32), np.stack(windows))

    def _check_detect_image(self, image, index):
        image = np.asarray(image)
        channels = self.config.IMAGE_CHANNEL_COUNT
        if image.ndim == 2 and channels == 3:
            image = np.stack([image] * 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] != channels:
            raise ValueError(
                "detect(): image {} has shape {}; expected [height, width, {}]"
                " (IMAGE_CHANNEL_COUNT)".format(index, image.shape, channels))
        if min(image.shape[:2]) < 1:
            raise ValueError("detect(): image {} is empty (shape {})".format(
                index, image.shape))
        if image.dtype != np.uint8:
            if np.issubdtype(image.dtype, np.integer) and image.size and (
                    image.min() < 0 or image.max() > 255):
                raise ValueError(
                    "detect(): image {} has {} pixels from {} to {}; pass "
                    "values in 0..255 (e.g. skimage.util.img_as_ubyte)".format(
                        index, image.dtype, image.min(), image.max()))
            if not np.issubdtype(image.dtype, np.number):
                raise ValueError("detect(): image {} has dtype {}".format(
                    index, image.dtype))
            if not np.all(np.isfinite(image)):
                raise ValueError("detect(): image {} has NaN or infinite "
                                 "pixels".format(index))
            if np.issubdtype(image.dtype, np.floating) and image.size \
                    and image.max() <= 1.0:
                raise ValueError(
                    "detect(): image {} is float with values in [0, 1]; pass "
                    "pixel values in 0..255 (e.g. uint8)".format(index))
        return image

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape,
                          image_shape, window):
        """Turns one image's detections into original-image coordinates.

        detections: [N, (y1, x1, y2, x2, class_id, score)] normalized.
        mrcnn_mask: [N, height, width, num_classes]
        original_image_shape: [H, W, C] before resizing.
        image_shape: [H, W, C] of the molded image.
        window: [y1, x1, y2, x2] pixels, the image inside the molded frame.
        Returns boxes [N, (y1, x1, y2, x2)] pixels, class_ids [N],
        scores [N], masks [height, width, N] bool at original size.
        """
        return postprocess.unmold_detections(
            detections, mrcnn_mask, original_image_shape, image_shape, window)

    def get_anchors(self, image_shape):
        """Normalized anchors [num_anchors, (y1, x1, y2, x2)] for a molded
        image shape, cached per shape."""
        key = tuple(int(v) for v in image_shape[:2])
        if key not in self._anchor_cache:
            backbone_shapes = compute_backbone_shapes(self.config, image_shape)
            anchors = utils.generate_pyramid_anchors(
                self.config.RPN_ANCHOR_SCALES, self.config.RPN_ANCHOR_RATIOS,
                backbone_shapes, self.config.BACKBONE_STRIDES,
                self.config.RPN_ANCHOR_STRIDE)
            self._anchor_cache[key] = utils.norm_boxes(
                anchors, key).astype(np.float32)
        return self._anchor_cache[key]

    def _predict(self, molded_images, image_metas, anchors):
        """Runs the inference graph.

        Returns detections [B, DETECTION_MAX_INSTANCES, 6] and the mask
        probabilities of each detection's own class [B, n, h, w], for the
        first n detections of each image, n being the most real detections
        of any image of the batch: the mask head skips the padding rows.
        The graph is traced once per input shape
        (self._detect_fn.experimental_get_tracing_count() counts traces).
        """
        if self._detect_fn is None:
            self._detect_fn = self._build_detect_fn()
        detections, masks = self._detect_fn(
            tf.constant(molded_images), tf.constant(image_metas),
            tf.constant(anchors))
        return detections.numpy(), masks.numpy()

    def _build_detect_fn(self):
        """tf.function of the inference graph split in two around the mask
        head, so that the head runs only on the real detections."""
        model = self.keras_model
        feature_maps = [model.get_layer("fpn_p{}".format(level)).output
                        for level in (2, 3, 4, 5)]
        detection_model = keras.Model(
            model.inputs, [model.get_layer("mrcnn_detection").output]
            + feature_maps)
        mask_model = keras.Model(
            [model.get_layer("detection_boxes").output, model.inputs[1]]
            + feature_maps, model.get_layer("mrcnn_mask").output)

        @tf.function(reduce_retracing=True, jit_compile=False)
        def detect_fn(images, metas, anchors):
            detections, *maps = detection_model([images, metas, anchors],
                                                training=False)
            detections = tf.cast(detections, tf.float32)
            class_ids = tf.cast(detections[..., 4], tf.int32)
            # Real detections come first, then zero rows (class 0). At
            # least one row keeps the mask head's shapes non-empty.
            count = tf.maximum(tf.reduce_max(tf.reduce_sum(
                tf.cast(class_ids > 0, tf.int32), axis=1)), 1)
            masks = mask_model([detections[:, :count, :4], metas] + maps,
                               training=False)
            # [B, n, h, w, classes] -> [B, n, h, w] of each row's class.
            masks = tf.gather(tf.cast(masks, tf.float32),
                              class_ids[:, :count], axis=4, batch_dims=2)
            return detections, masks
        return detect_fn

    def detect(self, images, verbose=0):
        """Runs detection on a list of images.

        images: list of [H, W, 3] images, any number (run in batches of
        BATCH_SIZE, the last one padded).
        Returns a list of dicts, one per image:
            rois: [N, (y1, x1, y2, x2)] detection boxes in image pixels
            class_ids: [N] int class IDs
            scores: [N] float confidence scores
            masks: [H, W, N] bool instance masks at the image's size
        """
        if self.mode != "inference":
            raise RuntimeError("Create the model in inference mode to detect.")
        if isinstance(images, np.ndarray) and images.ndim == 3 \
                and images.shape[-1] == self.config.IMAGE_CHANNEL_COUNT:
            raise ValueError(
                "detect() takes a list of images (or an [N, H, W, C] array); "
                "got one image of shape {}: pass detect([image])".format(
                    images.shape))
        images = list(images)
        if not images:
            return []
        if verbose:
            log("Processing {} images".format(len(images)))
            for image in images:
                log("image", np.asarray(image))
        results = []
        batch_size = self.config.BATCH_SIZE
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            results.extend(self._detect_batch(chunk, batch_size, verbose))
        return results

    def _detect_batch(self, images, batch_size, verbose):
        molded_images, image_metas, windows = self.mold_inputs(images)
        image_shape = molded_images[0].shape
        for g in molded_images[1:]:
            if g.shape != image_shape:
                raise ValueError(
                    "After resizing, images must have the same size; use "
                    "IMAGE_RESIZE_MODE 'square' or detect them one by one.")
        count = len(images)
        if count < batch_size:  # pad the last batch by repeating an image
            pad = batch_size - count
            molded_images = np.concatenate(
                [molded_images, np.repeat(molded_images[:1], pad, axis=0)])
            image_metas = np.concatenate(
                [image_metas, np.repeat(image_metas[:1], pad, axis=0)])
        anchors = np.broadcast_to(self.get_anchors(image_shape),
                                  (batch_size,) + self.get_anchors(image_shape).shape)
        if verbose:
            log("molded_images", molded_images)
            log("image_metas", image_metas)
            log("anchors", anchors)
        detections, mrcnn_mask = self._predict(molded_images, image_metas,
                                               np.ascontiguousarray(anchors))
        results = []
        for i, image in enumerate(images):
            rois, class_ids, scores, masks = self.unmold_detections(
                detections[i], mrcnn_mask[i], np.asarray(image).shape,
                molded_images[i].shape, windows[i])
            results.append({"rois": rois, "class_ids": class_ids,
                            "scores": scores, "masks": masks})
        return results

    def detect_tiled(self, images, tile=None, overlap=None, full_masks=True,
                     verbose=0):
        """Runs detection on overlapping tiles of images of any size and
        merges the instances cut by tile borders (see mrcnn.tiling).

        images: list of [H, W, C] images.
        tile: tile side in pixels, or (height, width); default
            IMAGE_MAX_DIM, so that tiles keep their scale in "square" mode.
        overlap: pixels shared by neighbouring tiles (default tile // 4).
        full_masks: True gives detect()'s masks [H, W, N] bool (H * W bytes
            an instance); False a list of N bool crops, crop i covering
            rois[i] (y1:y2, x1:x2), so that memory follows the tile size.
        Returns a list of detect()'s dicts, in pixels of each full image.
        """
        if self.mode != "inference":
            raise RuntimeError("Create the model in inference mode to detect.")
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise ValueError("detect_tiled() takes a list of images; got one "
                             "of shape {}".format(images.shape))
        tile = self.config.IMAGE_MAX_DIM if tile is None else tile

        def detect_tiles(image, windows):
            return self.detect([image[y1:y2, x1:x2]
                                for y1, x1, y2, x2 in windows])
        return [tiling.detect_tiled(
            self._check_detect_image(image, index), detect_tiles, tile,
            overlap, batch_size=self.config.BATCH_SIZE,
            full_masks=full_masks, verbose=verbose)
            for index, image in enumerate(images)]

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """Runs detection on images that are already molded (e.g. from
        load_image_gt + mold_image). Results are in molded-image pixels."""
        if self.mode != "inference":
            raise RuntimeError("Create the model in inference mode to detect.")
        molded_images = np.asarray(molded_images, dtype=np.float32)
        image_metas = np.asarray(image_metas, dtype=np.float32)
        image_shape = molded_images[0].shape
        anchors = np.broadcast_to(self.get_anchors(image_shape),
                                  (len(molded_images),)
                                  + self.get_anchors(image_shape).shape)
        detections, mrcnn_mask = self._predict(
            molded_images, image_metas, np.ascontiguousarray(anchors))
        results = []
        for i, image in enumerate(molded_images):
            window = [0, 0, image.shape[0], image.shape[1]]
            rois, class_ids, scores, masks = self.unmold_detections(
                detections[i], mrcnn_mask[i], image.shape, image.shape, window)
            results.append({"rois": rois, "class_ids": class_ids,
                            "scores": scores, "masks": masks})
        return results

    # -------------------------------------------------------------- inspection
    def get_trainable_layers(self):
        """Returns the layers that have weights (nested models walked into)."""
        layers = []
        stack = list(self.keras_model.layers)
        while stack:
            layer = stack.pop(0)
            if isinstance(layer, keras.Model):
                stack = list(layer.layers) + stack
            elif layer.weights:
                layers.append(layer)
        return layers

    def run_graph(self, images, outputs, image_metas=None):
        """Runs a sub-set of the computation graph for inspection.

        outputs: list of (name, tensor) tuples, where tensor is a symbolic
        output of self.keras_model's graph, e.g.
        ``("proposals", model.keras_model.get_layer("ROI").output)``; a
        layer name string in place of the tensor takes that layer's output.
        Returns an ordered dict of numpy arrays.
        """
        outputs = OrderedDict(
            (name, self.keras_model.get_layer(t).output if isinstance(t, str)
             else t) for name, t in outputs)
        sub_model = keras.Model(self.keras_model.inputs, list(outputs.values()))
        if image_metas is None:
            molded_images, image_metas, _ = self.mold_inputs(images)
        else:
            molded_images = np.asarray(images, dtype=np.float32)
        inputs = [molded_images, image_metas]
        if self.mode == "inference":
            anchors = self.get_anchors(molded_images[0].shape)
            inputs.append(np.broadcast_to(anchors, (len(molded_images),)
                                          + anchors.shape))
        else:
            raise RuntimeError(
                "run_graph() feeds images only; build the model in inference "
                "mode, or call keras_model on a batch from MaskRCNNDataset.")
        values = sub_model.predict(inputs, verbose=0)
        if not isinstance(values, (list, tuple)):
            values = [values]
        result = OrderedDict()
        for key, value in zip(outputs.keys(), values):
            result[key] = np.asarray(value)
            log(key, result[key])
        return result
