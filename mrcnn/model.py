"""Mask R-CNN: the model class users build, train and run.

    model = MaskRCNN(mode="training", config=config, model_dir=MODEL_DIR)
    model.load_weights(COCO_WEIGHTS, by_name=True, exclude=[
        "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
                epochs=30, layers="heads")

    model = MaskRCNN(mode="inference", config=config, model_dir=MODEL_DIR)
    model.load_weights(model.find_last(), by_name=True)
    r = model.detect([image])[0]   # rois, class_ids, scores, masks

The graph itself is assembled in ``mrcnn.network.architecture`` from one module per
stage; this module also re-exports the names that code written for the
original ``mrcnn.model`` imports from here.
"""

import logging
import os

import numpy as np
import tensorflow as tf
import keras

from mrcnn import runtime
from mrcnn.network import architecture
from mrcnn.training import best_model
from mrcnn.training import checkpoints
from mrcnn.training import distribute
from mrcnn.inference import molding as inference
from mrcnn.inference import postprocess
from mrcnn.training import termination
from mrcnn.inference import tiling
from mrcnn.training import trainer as training
from mrcnn import utils  # noqa: F401  (the original's mrcnn.model.utils)
from mrcnn.weights import loading as weights_io
# Re-exports: the original mrcnn.model kept all of these in one file.
from mrcnn.network.backbone import (BatchNorm, conv_block,  # noqa: F401
                                    fpn_graph, identity_block, resnet_graph)
from mrcnn.network.box_ops import (apply_box_deltas_graph,  # noqa: F401
                                   batch_pack_graph, box_refinement_graph,
                                   clip_boxes_graph, denorm_boxes_graph,
                                   norm_boxes_graph, overlaps_graph,
                                   parse_image_meta_graph, trim_zeros_graph)
from mrcnn.data import (build_detection_targets,  # noqa: F401
                        build_rpn_targets, compose_image_meta,
                        compute_backbone_shapes, data_generator,
                        generate_random_rois, load_image_gt, mold_image,
                        parse_image_meta, unmold_image, MaskRCNNDataset,
                        DataSequence)
from mrcnn.training.checkpoints import CHECKPOINT_RE  # noqa: F401
from mrcnn.training.trainer import LAYER_REGEX
from mrcnn.structures.class_identity import check_class_count
from mrcnn.network.detection import DetectionLayer, refine_detections_graph  # noqa: F401
from mrcnn.network.heads import build_fpn_mask_graph, fpn_classifier_graph  # noqa: F401
from mrcnn.network.losses import (mrcnn_bbox_loss_graph,  # noqa: F401
                                  mrcnn_class_loss_graph,
                                  mrcnn_mask_loss_graph, rpn_bbox_loss_graph,
                                  rpn_class_loss_graph, smooth_l1_loss)
from mrcnn.network.roi_align import PyramidROIAlign, log2_graph  # noqa: F401
from mrcnn.runtime import precision_policy
from mrcnn.drawing.tables import log
from mrcnn.network.rpn import ProposalLayer, build_rpn_model, rpn_graph  # noqa: F401
from mrcnn.network.targets import (DetectionTargetLayer,  # noqa: F401
                                   detection_targets_graph)

logger = logging.getLogger(__name__)


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
            MultiWorkerMirroredStrategy (see mrcnn.training.distribute).
        """
        if mode not in ("training", "inference"):
            raise ValueError("mode must be 'training' or 'inference', got "
                             "{!r}".format(mode))
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self.epoch = 0
        self._anchor_cache = {}
        self._device_anchors = inference.DeviceAnchors(self.get_anchors)
        self._detect_fn = None
        self.set_log_dir()
        # Before the first TensorFlow op: the GPUs' memory and the thread
        # pools are fixed after it.
        runtime.configure_gpu_memory(config.GPU_MEMORY_GROWTH)
        runtime.warn_if_tensorflows_collide()
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
            keras_model = training.MaskRCNNTrainingModel(
                inputs=inputs, outputs=outputs,
                loss_weights=config.LOSS_WEIGHTS,
                weight_decay=config.WEIGHT_DECAY, name="mask_rcnn")
            architecture.configure_batch_norm(keras_model, config)
            return keras_model
        inputs, outputs = architecture.build_inference_graph(config)
        return keras.Model(inputs=inputs, outputs=outputs, name="mask_rcnn")

    # ---------------------------------------------------------------- weights
    def find_last(self):
        """Finds the last checkpoint of the last run of this configuration.

        Returns the path of the newest checkpoint. Runs that crashed before
        their first checkpoint are passed over.
        """
        return checkpoints.find_last_checkpoint(self.model_dir,
                                                self.config.NAME)

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
        """Writes the weights to filepath (a .weights.h5 file), atomically."""
        weights_io.save_weights(self.keras_model, filepath)

    def set_log_dir(self, model_path=None):
        """Sets the log dir and epoch counter (see mrcnn.training.checkpoints).

        Without model_path, a new run. With one of our checkpoints, the
        epoch count goes on from its epoch, in its run's folder when it is
        that run's last checkpoint, else in a new folder that records it.
        """
        self.epoch, self.log_dir, self._continues = checkpoints.run_of(
            model_path, self.model_dir, self.config.NAME)
        # A new run started from a checkpoint records which.
        self._parent = None if self._continues or not self.epoch \
            else model_path
        self.checkpoint_path = training.checkpoint_template(
            self.log_dir, self.config.NAME)

    def create_log_dir(self):
        """Creates the run's folder, exclusively (the next free name if
        another run took log_dir meanwhile), and returns its path. train()
        calls it; repeated calls and a continued run keep the folder."""
        if not self._continues:
            self.log_dir = checkpoints.create_run_dir(self.log_dir,
                                                      self._parent, self.epoch)
            self.checkpoint_path = training.checkpoint_template(
                self.log_dir, self.config.NAME)
            self._continues = True  # from now on, this run's folder
        os.makedirs(self.log_dir, exist_ok=True)
        return self.log_dir

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
            # Clips the gradient summed over replicas (see mrcnn.training.distribute).
            optimizer = distribute.GlobalGradientSGD(
                learning_rate=learning_rate, momentum=momentum,
                clipnorm=self.config.GRADIENT_CLIP_NORM)
            if self.precision == "mixed_float16":
                # float16 gradients underflow without loss scaling.
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.keras_model.compile(optimizer=optimizer, jit_compile=False)

    def export(self, path, format="saved_model", full_masks=True,
               class_names=None, **options):
        """Writes the model for serving, molding and unmolding inside:
        format "saved_model", "onnx" or "tflite" (LiteRT, built-in ops
        only). See mrcnn.inference.export_formats.export_model."""
        from mrcnn.inference import export_formats
        return export_formats.export_model(self, path, format, full_masks,
                                           class_names, **options)

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None,
              no_augmentation_sources=None, workers=None, monitor=None,
              patience=None, use_multiprocessing=False):
        """Trains the model.

        train_dataset, val_dataset: prepared Dataset objects (val may be None)
            of config.NUM_CLASSES classes each (else ValueError).
        learning_rate: The learning rate to train with.
        epochs: Number of training epochs. Previous training epochs count, so
            this is the epoch number to reach, not the number to add.
        layers: "heads", "3+", "4+", "5+", "all" or a regular expression on
            layer names selecting the layers to train.
        augmentation: an imgaug augmenter or albumentations transform for
            the images (and, for the geometric ones, the masks).
        custom_callbacks: extra Keras callbacks.
        no_augmentation_sources: dataset sources not to augment.
        workers: data-loading threads, or processes with
            use_multiprocessing (default: one per available core, at most
            4).
        monitor: None, "val_loss", "val_mask_ap50", "val_mask_ap",
            "val_bbox_ap50" or "val_bbox_ap": keep the best epoch's weights
            as mask_rcnn_<name>_best.weights.h5 (APs are evaluated on
            val_dataset after every epoch; see mrcnn.training.best_model).
        patience: with monitor, stop after this many epochs without
            improvement (None: never).
        use_multiprocessing: build the batches in `workers` spawned
            processes, which scale with cores where threads share about
            one; the same batches either way. The datasets and the
            augmentation must be picklable and defined in a module (not
            in a notebook). The processes end with train().
        Returns the Keras History.
        """
        if self.mode != "training":
            raise RuntimeError("Create the model in training mode to train.")
        # Before any step: other class ids would mean other classes.
        check_class_count(train_dataset, self.config, "training")
        check_class_count(val_dataset, self.config, "validation")
        layers = LAYER_REGEX.get(layers, layers)
        train_feed, val_feed = training.training_feeds(
            self.config, train_dataset, val_dataset, augmentation,
            no_augmentation_sources, workers, use_multiprocessing)
        self.create_log_dir()  # the datasets are fine: now it is a run
        callbacks, stop_on_nan = training.fit_callbacks(
            self.log_dir, self.checkpoint_path, train_feed,
            best_model.training_callbacks(
                monitor, patience, self.log_dir, self.config.NAME,
                val_dataset, val_feed is not None, self._evaluation_twin)
            + list(custom_callbacks or []))

        log("\nStarting at epoch {}. LR={}\n".format(self.epoch, learning_rate))
        log("Checkpoint Path: {}".format(self.checkpoint_path))
        log("Precision: {}, CPU threads: {}".format(
            self.precision or "float32", self.threads))
        self.set_trainable(layers)
        self.compile(learning_rate, self.config.LEARNING_MOMENTUM)
        with termination.sigterm_stops_cleanly(self.log_dir), \
                training.closing_feeds(train_feed, val_feed):
            history = self.keras_model.fit(
                train_feed, initial_epoch=self.epoch, epochs=epochs,
                steps_per_epoch=self.config.STEPS_PER_EPOCH,
                validation_data=val_feed, validation_steps=(
                    self.config.VALIDATION_STEPS if val_feed else None),
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
        return inference.mold_inputs(images, self.config)

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
            self._anchor_cache[key] = inference.normalized_anchors(
                self.config, image_shape)
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
            self._detect_fn = inference.build_detect_fn(self.keras_model)
        detections, masks = self._detect_fn(
            tf.constant(molded_images), tf.constant(image_metas),
            tf.convert_to_tensor(anchors))
        return detections.numpy(), masks.numpy()

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
        images = inference.image_list(images,
                                      self.config.IMAGE_CHANNEL_COUNT)
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
        image_shape = inference.common_shape(molded_images)
        molded_images, image_metas = inference.pad_to_batch(
            molded_images, image_metas, batch_size)
        anchors = self._device_anchors(image_shape, batch_size)
        if verbose:
            log("molded_images", molded_images)
            log("image_metas", image_metas)
            log("anchors", anchors.numpy())
        detections, mrcnn_mask = self._predict(molded_images, image_metas,
                                               anchors)
        return postprocess.detection_dicts(
            self.unmold_detections, detections, mrcnn_mask,
            [np.asarray(image).shape for image in images],
            [molded.shape for molded in molded_images], windows)

    def detect_tiled(self, images, tile=None, overlap=None, full_masks=True,
                     verbose=0):
        """Runs detection on overlapping tiles of images of any size and
        merges the instances cut by tile borders (see mrcnn.inference.tiling).

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
            inference.check_detect_image(
                image, index, self.config.IMAGE_CHANNEL_COUNT),
            detect_tiles, tile,
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
        anchors = self._device_anchors(molded_images[0].shape,
                                       len(molded_images))
        detections, mrcnn_mask = self._predict(molded_images, image_metas,
                                               anchors)
        # Results in molded pixels: the whole molded image is the window.
        shapes = [image.shape for image in molded_images]
        return postprocess.detection_dicts(
            self.unmold_detections, detections, mrcnn_mask, shapes, shapes,
            [[0, 0, shape[0], shape[1]] for shape in shapes])

    # -------------------------------------------------------------- inspection
    def get_trainable_layers(self):
        """Returns the layers that have weights (nested models walked into)."""
        return training.layers_with_weights(self.keras_model)

    def run_graph(self, images, outputs, image_metas=None):
        """Runs a sub-set of the computation graph for inspection.

        outputs: list of (name, tensor) tuples, where tensor is a symbolic
        output of self.keras_model's graph, e.g.
        ``("proposals", model.keras_model.get_layer("ROI").output)``; a
        layer name string in place of the tensor takes that layer's output.
        Returns an ordered dict of numpy arrays.
        """
        result = inference.run_graph(self, images, outputs, image_metas)
        for key, value in result.items():
            log(key, value)
        return result
