"""Speed of MaskRCNN.detect() at 1024x1024, printed as one JSON line.

For each backbone (ResNet50 and ResNet101 by default), in a fresh process
of its own so that peak memory is per backbone:

* first_detect_ms: the first detect() call (tracing and graph optimization
  included), later_detect_ms: the median of the following calls;
* peak_rss_mb: the process's peak resident memory;
* stages: each stage of the graph timed on its own (a sub-model of the
  inference graph fed with the previous stage's outputs, median of
  --stage-repeats runs): backbone, fpn, rpn (the RPN head on P2..P6),
  proposals (top-k, box deltas, NMS), heads (ROI align, classifier, box
  refinement, DetectionLayer), masks (ROI align and the mask head on the
  detections, each detection's class channel), unmold (boxes and masks to
  image pixels, the masks pasted full size); mold (mold_inputs) too. Each
  with its conv/matmul GFLOP and the GFLOP/s reached, next to
* gemm_peak_gflops: a large tf.matmul in the same process.

The weights are random, NUM_CLASSES is 81 (COCO) and
DETECTION_MIN_CONFIDENCE 0, so every image gets DETECTION_MAX_INSTANCES
(100) detections and masks. Run it with::

    python benchmarks/inference.py                       # both backbones
    python benchmarks/inference.py --backbones resnet50 --repeats 5
    python benchmarks/inference.py --mixed-precision mixed_bfloat16

benchmarks/compare_torchvision.py reuses the stage profiler below.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import mrcnn  # noqa: E402,F401  (before TensorFlow: runtime.prefer_onednn)

import numpy as np  # noqa: E402

STAGES = ("mold", "backbone", "fpn", "rpn", "proposals", "heads", "masks",
          "unmold")


def configure_threads(threads):
    """TensorFlow on `threads` cores: one op at a time, each op on all of
    them (like torch.set_num_threads for the torchvision comparison).
    Must run before TensorFlow executes anything."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def make_config(backbone="resnet50", image_size=1024, num_classes=81,
                mixed_precision=None, rpn_conv_depth=None, batch_size=1,
                **overrides):
    """An inference Config that makes DETECTION_MAX_INSTANCES detections
    on any image (DETECTION_MIN_CONFIDENCE 0)."""
    from mrcnn.config import Config

    attributes = dict(
        NAME="bench", BACKBONE=backbone, NUM_CLASSES=num_classes,
        IMAGES_PER_GPU=batch_size, IMAGE_MIN_DIM=image_size,
        IMAGE_MAX_DIM=image_size, DETECTION_MIN_CONFIDENCE=0.0,
        MIXED_PRECISION=mixed_precision)
    if rpn_conv_depth:
        attributes["RPN_CONV_DEPTH"] = rpn_conv_depth
    attributes.update(overrides)
    return type("BenchConfig", (Config,), attributes)()


def random_image(size, seed=0):
    """A uint8 [size, size, 3] image of smooth random blobs (not white
    noise, so that the random-weight RPN still sees some structure)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 16, size // 16, 3))
    return np.kron(small, np.ones((16, 16, 1))).astype(np.uint8)


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb():
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def gemm_peak_gflops(size=2048, repeats=7, dtype="float32"):
    """GFLOP/s of a [size, size] x [size, size] tf.matmul: the best of
    `repeats` runs (a peak, so the least disturbed run)."""
    import tensorflow as tf
    a = tf.cast(tf.random.uniform([size, size]), dtype)
    b = tf.cast(tf.random.uniform([size, size]), dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2.0 * size ** 3 / min(times) / 1e9


############################################################
#  FLOPs of a traced graph
############################################################

def _dims(tensor):
    return tensor.shape.as_list() if tensor.shape.rank is not None else None


def op_flops(op):
    """Multiply-add FLOPs (2 per MAC) of a conv / matmul op, 0 for other
    ops, None when a shape it needs is unknown."""
    if op.type == "Conv2D":
        out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
        if out is None or kernel is None or None in out + kernel:
            return None
        return 2 * int(np.prod(out)) * kernel[0] * kernel[1] * kernel[2]
    if op.type == "Conv2DBackpropInput":  # transposed conv
        kernel, small = _dims(op.inputs[1]), _dims(op.inputs[2])
        if small is None or kernel is None or None in small + kernel:
            return None
        return 2 * int(np.prod(small)) * kernel[0] * kernel[1] * kernel[2]
    if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a, b = _dims(op.inputs[0]), _dims(op.inputs[1])
        if a is None or b is None or None in a + b:
            return None
        adjoint_a = op.get_attr("transpose_a" if op.type == "MatMul"
                                else "adj_x")
        adjoint_b = op.get_attr("transpose_b" if op.type == "MatMul"
                                else "adj_y")
        m = a[-1] if adjoint_a else a[-2]
        k = a[-2] if adjoint_a else a[-1]
        n = b[-2] if adjoint_b else b[-1]
        batch = int(np.prod(np.broadcast_shapes(tuple(a[:-2]),
                                                tuple(b[:-2]))))
        return 2 * batch * m * n * k
    return 0


def graph_flops(concrete_function):
    """Conv and matmul FLOPs of a concrete function's graph (the ops of
    while-loop bodies, e.g. NMS, are not counted)."""
    total = 0
    for op in concrete_function.graph.get_operations():
        flops = op_flops(op)
        if flops is None:
            return None
        total += flops
    return total


def paste_flops(boxes, mask_shape):
    """FLOPs of postprocess.paste_masks' two matrix products per mask."""
    mask_h, mask_w = mask_shape
    height = np.maximum(boxes[:, 2] - boxes[:, 0], 0)
    width = np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    return int(np.sum(2 * (mask_h * mask_w * width
                           + height * mask_h * width)))


############################################################
#  Stage profiler
############################################################

class StageProfiler(object):
    """Times each stage of an inference MaskRCNN on its own.

    Every stage is a sub-model of model.keras_model from the stage's input
    tensors to its outputs (Keras cuts the graph at intermediate tensors),
    wrapped in a tf.function and fed with the previous stage's outputs, so
    that the time of one stage does not depend on measuring the others.
    """

    def __init__(self, model):
        import keras
        import tensorflow as tf

        self.model = model
        km = model.keras_model
        t = {"image": km.inputs[0], "meta": km.inputs[1],
             "anchors": km.inputs[2]}
        for level in (2, 3, 4, 5):
            t["C%d" % level] = km.get_layer("fpn_c%dp%d" % (level, level)).input
            t["P%d" % level] = km.get_layer("fpn_p%d" % level).output
        t["P6"] = km.get_layer("fpn_p6").output
        for name in ("rpn_class", "rpn_bbox"):
            t[name] = km.get_layer(name).output
        t["rois"] = km.get_layer("ROI").output
        t["detections"] = km.get_layer("mrcnn_detection").output
        t["detection_boxes"] = km.get_layer("detection_boxes").output
        maps = ["P2", "P3", "P4", "P5"]
        self.plan = [
            ("backbone", ["image"], ["C2", "C3", "C4", "C5"]),
            ("fpn", ["C2", "C3", "C4", "C5"], maps + ["P6"]),
            ("rpn", maps + ["P6"], ["rpn_class", "rpn_bbox"]),
            ("proposals", ["rpn_class", "rpn_bbox", "anchors"], ["rois"]),
            ("heads", ["rois", "meta"] + maps, ["detections"]),
        ]
        self.functions = {}
        for name, inputs, outputs in self.plan:
            sub_model = keras.Model([t[k] for k in inputs],
                                    [t[k] for k in outputs])
            self.functions[name] = tf.function(
                lambda *args, m=sub_model: m(list(args), training=False))
        self.mask_model = keras.Model(
            [t["detection_boxes"], t["meta"]] + [t[k] for k in maps],
            km.get_layer("mrcnn_mask").output)

        mask_model = self.mask_model

        @tf.function
        def masks(detections, metas, *feature_maps):
            # As MaskRCNN._predict: the mask head on the real detections,
            # then each detection's class channel.
            detections = tf.cast(detections, tf.float32)
            class_ids = tf.cast(detections[..., 4], tf.int32)
            count = tf.maximum(tf.reduce_max(tf.reduce_sum(
                tf.cast(class_ids > 0, tf.int32), axis=1)), 1)
            probs = mask_model([detections[:, :count, :4], metas]
                               + list(feature_maps), training=False)
            return tf.gather(tf.cast(probs, tf.float32), class_ids[:, :count],
                             axis=4, batch_dims=2)
        self.functions["masks"] = masks

    def profile(self, image, repeats=3):
        """Returns {stage: {"ms", "gflop", "gflop_per_s"}} for one image
        (stage outputs of the first run feed the next stage)."""
        import tensorflow as tf

        model = self.model
        result = {}
        seconds = median_seconds(lambda: model.mold_inputs([image]), repeats)
        molded, metas, windows = model.mold_inputs([image])
        anchors = model.get_anchors(molded[0].shape)[np.newaxis]
        result["mold"] = {"ms": 1000 * seconds, "gflop": None}
        values = {"image": tf.constant(molded), "meta": tf.constant(metas),
                  "anchors": tf.constant(anchors)}
        for name, inputs, outputs in self.plan:
            args = [values[k] for k in inputs]
            outs = self._time(name, args, repeats, result)
            values.update(zip(outputs, outs))

        maps = [values[k] for k in ("P2", "P3", "P4", "P5")]
        args = [values["detections"], values["meta"]] + maps
        masks = self._time("masks", args, repeats, result)[0]
        count = masks.shape[1]
        # FLOPs of the mask head on `count` boxes (a static-shape trace).
        boxes_spec = tf.TensorSpec([1, count, 4], tf.float32)
        specs = [boxes_spec, tf.TensorSpec.from_tensor(values["meta"])] + [
            tf.TensorSpec.from_tensor(m) for m in maps]
        head = tf.function(lambda *a: self.mask_model(list(a),
                                                      training=False))
        result["masks"]["gflop"] = _gflop(graph_flops(
            head.get_concrete_function(*specs)))

        detections = values["detections"].numpy()[0]
        masks = masks.numpy()[0]

        def unmold():
            return model.unmold_detections(detections, masks, image.shape,
                                           molded[0].shape, windows[0])
        seconds = median_seconds(unmold, repeats)
        boxes = unmold()[0]
        result["unmold"] = {"ms": 1000 * seconds,
                            "gflop": _gflop(paste_flops(boxes, masks.shape[1:3]))}
        for stage in result.values():
            stage["gflop_per_s"] = (None if not stage["gflop"] else
                                    round(stage["gflop"] / stage["ms"] * 1000, 1))
            stage["ms"] = round(stage["ms"], 1)
        result["detections"] = int(len(boxes))
        return result

    def _time(self, name, args, repeats, result):
        function = self.functions[name]
        outputs = function(*args)  # trace
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]

        def run():
            out = function(*args)
            for tensor in (out if isinstance(out, (list, tuple)) else [out]):
                tensor.numpy()
        seconds = median_seconds(run, repeats)
        flops = None
        if name != "masks":  # its ROI count is dynamic: counted apart
            flops = graph_flops(function.get_concrete_function(*args))
        result[name] = {"ms": 1000 * seconds, "gflop": _gflop(flops)}
        return outputs


def _gflop(flops):
    return None if flops is None else round(flops / 1e9, 2)


############################################################
#  Benchmark
############################################################

def measure_detect(model, image, repeats):
    """(first call ms, median of `repeats` later calls ms)."""
    start = time.perf_counter()
    results = model.detect([image])
    first = time.perf_counter() - start
    later = median_seconds(lambda: model.detect([image]), repeats)
    return 1000 * first, 1000 * later, len(results[0]["class_ids"])


def run_backbone(args):
    """The measurements of one backbone, in this process."""
    configure_threads(args.threads)
    from mrcnn import model as modellib

    config = make_config(args.backbone, args.size,
                         mixed_precision=args.mixed_precision,
                         rpn_conv_depth=args.rpn_conv_depth)
    start = time.perf_counter()
    model = modellib.MaskRCNN("inference", config, model_dir=args.model_dir)
    build_s = time.perf_counter() - start
    image = random_image(args.size)
    first_ms, later_ms, detections = measure_detect(model, image,
                                                    args.repeats)
    traces = model._detect_fn.experimental_get_tracing_count()
    rss_after_detect = peak_rss_mb()
    stages = StageProfiler(model).profile(image, args.stage_repeats)
    return {
        "first_detect_ms": round(first_ms, 1),
        "later_detect_ms": round(later_ms, 1),
        "detections": detections,
        "traces": traces,
        "build_s": round(build_s, 1),
        "peak_rss_mb": round(rss_after_detect, 1),
        "stages": stages,
        "stages_total_ms": round(sum(s["ms"] for k, s in stages.items()
                                     if k in STAGES), 1),
        "gemm_peak_gflops": round(gemm_peak_gflops(
            dtype="bfloat16" if args.mixed_precision == "mixed_bfloat16"
            else "float32"), 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+",
                        default=["resnet50", "resnet101"])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3,
                        help="detect() calls after the first (median)")
    parser.add_argument("--stage-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mixed-precision", default=None,
                        choices=[None, "mixed_bfloat16"])
    parser.add_argument("--rpn-conv-depth", type=int, default=None,
                        help="RPN_CONV_DEPTH (default: Config's 512)")
    parser.add_argument("--model-dir", default="/tmp/mrcnn_bench_logs")
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.backbone:  # child process: one backbone
        print(json.dumps(run_backbone(args)))
        return

    report = {
        "date": time.strftime("%Y-%m-%d"),
        "image_size": args.size, "num_classes": 81, "threads": args.threads,
        "mixed_precision": args.mixed_precision,
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
    }
    for backbone in args.backbones:
        command = [sys.executable, os.path.abspath(__file__),
                   "--backbone", backbone] + _passed_options(args)
        completed = subprocess.run(command, stdout=subprocess.PIPE,
                                   check=True, text=True)
        report[backbone] = json.loads(completed.stdout.strip().splitlines()[-1])
    report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report))


def _passed_options(args):
    options = ["--size", str(args.size), "--repeats", str(args.repeats),
               "--stage-repeats", str(args.stage_repeats),
               "--threads", str(args.threads), "--model-dir", args.model_dir]
    if args.mixed_precision:
        options += ["--mixed-precision", args.mixed_precision]
    if args.rpn_conv_depth:
        options += ["--rpn-conv-depth", str(args.rpn_conv_depth)]
    return options


if __name__ == "__main__":
    main()
