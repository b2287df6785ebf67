"""Our ResNet50-FPN Mask R-CNN against torchvision's maskrcnn_resnet50_fpn,
on the same machine in one run, printed as one JSON line.

Both with random weights and `--threads` threads (TensorFlow: that many
intra-op threads, one op at a time; torch: torch.set_num_threads):

* inference: one 1024x1024 image, 1000 proposals, 100 detections with
  full-size masks, as returned by MaskRCNN.detect() and by torchvision's
  model(images) (its resize, heads and mask pasting included). Our model
  uses DETECTION_MIN_CONFIDENCE 0, so its 1000 ROIs all compete in NMS;
  torchvision scores every (ROI, class) pair, so its box_score_thresh is
  set to the 1000th best class score of the image (measured once before
  timing) to give its NMS the same 1000 candidates. Detection NMS 0.3 on
  both, 81 classes.
  inference_ratio = ours / torchvision (float32), inference_ratio_bf16 =
  ours with Config.MIXED_PRECISION = "mixed_bfloat16" / torchvision
  float32.
* train: SGD steps (learning rate 1e-4, momentum 0.9, weight decay 1e-4,
  gradient clipping; --train-steps per timed run; the losses are reported
  to show that they stay finite) on a batch of 2 512x512 images of the
  synthetic shapes dataset (the same images and instances for both), every
  layer trained, batch norm on the moving statistics with its scale and
  offset trained on both (our TRAIN_BN False, as matterport; torchvision's
  BatchNorm2d layers in eval mode), 200 ROIs per image with 33% positives,
  the ground truth boxes among the proposals (torchvision always adds
  them; our ADD_GT_TO_PROPOSALS), the same anchor sizes (our default
  scales halved: 16..256). train_ratio = ours / torchvision (float32),
  train_ratio_bf16 = ours with mixed_bfloat16 / torchvision float32.
* Where our time goes: each stage (mold, backbone, fpn, rpn, proposals,
  heads, masks, unmold; see benchmarks/inference.py) with its conv/matmul
  GFLOP/s and the share of the GEMM peak (a large tf.matmul) it reaches;
  torchvision's stages (transform, backbone body, fpn, rpn, roi heads,
  mask pasting) next to them.

The architectures match: torchvision's RPN head conv has 256 channels, so
ours is built with RPN_CONV_DEPTH 256 for both comparisons (matterport's
default is 512; with --with-rpn-512 the run also times that inference, as
inference_ratio_rpn512).

The runs of the two frameworks alternate (--rounds), so that the load of a
shared machine weighs on both alike. torchvision runs in a separate
virtualenv (torch is not a dependency of mrcnn), as a worker process that
this script drives over a pipe::

    python3 -m venv benchmarks/.torch-venv
    benchmarks/.torch-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    python benchmarks/compare_torchvision.py            # with mrcnn's venv

*_ratio_auto repeat the ratios of the precision Config.MIXED_PRECISION
"auto" picks here (auto_precision: bfloat16 where the CPU has AVX512_BF16
or AMX, float32 elsewhere); "cpu" lists the CPU flags that decide the
kernels, "onednn_max_cpu_isa" the oneDNN ISA cap if one was set (an
AVX-512 host capped at AVX2 runs oneDNN's AVX2 kernels; torch is then
capped alike, see torch_environment). The mixed_bfloat16 runs are timed
only where bfloat16 is native (--bf16).

Targets on both CPU generations: train_ratio <= 0.8, inference_ratio <=
0.55; where bfloat16 is native, train_ratio_auto <= 0.5 and
inference_ratio_auto <= 0.33.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pipe_worker import PipeClient, serve  # noqa: E402

# The torch virtualenv's interpreter (--torch-python or
# $MRCNN_TORCH_PYTHON to use one elsewhere).
TORCH_PYTHON = os.environ.get(
    "MRCNN_TORCH_PYTHON", os.path.join(HERE, ".torch-venv", "bin", "python"))
NUM_CLASSES = 81
INFERENCE_SIZE = 1024
TRAIN_SIZE = 512
TRAIN_IMAGES = 2
PROPOSALS = 1000
DETECTIONS = 100
DETECTION_NMS = 0.3
TRAIN_ROIS = 200
POSITIVE_FRACTION = 0.33
# Small enough that random weights do not diverge over the timed steps (a
# NaN loss would make later steps cheaper: no valid box left).
TRAIN_LEARNING_RATE = 1e-4


############################################################
#  torchvision worker (runs in the torch virtualenv, no TensorFlow)
############################################################

class TorchWorker(object):
    """Answers one JSON command per line on stdin with one JSON line."""

    def __init__(self, threads):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = None
        self.image = None

    def inference_setup(self, image_path, size):
        import numpy as np
        import torchvision
        torch = self.torch
        torch.manual_seed(0)
        image = np.load(image_path)
        self.image = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        self.model = torchvision.models.detection.maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=NUM_CLASSES,
            min_size=size, max_size=size,
            rpn_pre_nms_top_n_test=PROPOSALS,
            rpn_post_nms_top_n_test=PROPOSALS,
            box_nms_thresh=DETECTION_NMS,
            box_detections_per_img=DETECTIONS).eval()
        self.model.roi_heads.score_thresh = self._thousandth_score()
        return {"score_thresh": self.model.roi_heads.score_thresh}

    def _thousandth_score(self):
        """The PROPOSALS-th best foreground class score over all ROIs."""
        torch = self.torch
        model = self.model
        with torch.inference_mode():
            images, _ = model.transform([self.image])
            features = model.backbone(images.tensors)
            proposals, _ = model.rpn(images, features)
            heads = model.roi_heads
            pooled = heads.box_roi_pool(features, proposals,
                                        images.image_sizes)
            logits, _ = heads.box_predictor(heads.box_head(pooled))
            scores = torch.softmax(logits, -1)[:, 1:].flatten()
            return float(torch.sort(scores, descending=True).values[
                PROPOSALS - 1]) * (1 - 1e-6)

    def infer(self):
        torch = self.torch
        with torch.inference_mode():
            start = time.perf_counter()
            outputs = self.model([self.image])
            seconds = time.perf_counter() - start
        return {"seconds": seconds,
                "detections": int(outputs[0]["masks"].shape[0]),
                "mask_shape": list(outputs[0]["masks"].shape)}

    def inference_stages(self, repeats):
        torch = self.torch
        model = self.model
        original_size = [tuple(self.image.shape[-2:])]
        times = {}

        def timed(name, function):
            start = time.perf_counter()
            value = function()
            times.setdefault(name, []).append(time.perf_counter() - start)
            return value
        with torch.inference_mode():
            for _ in range(repeats):
                images, _ = timed("transform",
                                  lambda: model.transform([self.image]))
                body = timed("backbone",
                             lambda: model.backbone.body(images.tensors))
                features = timed("fpn", lambda: model.backbone.fpn(body))
                proposals, _ = timed("rpn_and_proposals", lambda: model.rpn(
                    images, features))
                detections, _ = timed("heads_and_masks", lambda: model.roi_heads(
                    features, proposals, images.image_sizes))
                timed("paste", lambda: model.transform.postprocess(
                    detections, images.image_sizes, original_size))
        return {name: round(1000 * statistics.median(values), 1)
                for name, values in times.items()}

    def train_setup(self, batch_path, size, anchor_sizes, learning_rate):
        import numpy as np
        import torchvision
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        torch = self.torch
        self.model = None
        torch.manual_seed(0)
        batch = np.load(batch_path)
        self.images = [torch.from_numpy(image).permute(2, 0, 1).float() / 255
                       for image in batch["images"]]
        self.targets = []
        for i in range(len(self.images)):
            count = int(batch["counts"][i])
            self.targets.append({
                "boxes": torch.from_numpy(batch["boxes"][i, :count]).float(),
                "labels": torch.from_numpy(batch["class_ids"][i, :count]).long(),
                "masks": torch.from_numpy(
                    batch["masks"][i, :count].astype(np.uint8)),
            })
        anchors = AnchorGenerator(
            sizes=tuple((s,) for s in anchor_sizes),
            aspect_ratios=((0.5, 1.0, 2.0),) * len(anchor_sizes))
        model = torchvision.models.detection.maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None,
            num_classes=int(batch["num_classes"]),
            min_size=size, max_size=size,
            rpn_anchor_generator=anchors, rpn_post_nms_top_n_train=2000,
            box_batch_size_per_image=TRAIN_ROIS,
            box_positive_fraction=POSITIVE_FRACTION)
        self.model = model.train()
        moving_statistics(model)
        self.optimizer = torch.optim.SGD(model.parameters(),
                                         lr=learning_rate, momentum=0.9,
                                         weight_decay=1e-4)
        return {}

    def train(self, steps):
        torch = self.torch
        start = time.perf_counter()
        for _ in range(steps):
            losses = self.model(self.images, self.targets)
            loss = sum(losses.values())
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.optimizer.step()
        return {"seconds": (time.perf_counter() - start) / steps,
                "loss": float(loss.detach())}


def moving_statistics(module):
    """Puts every BatchNorm2d under `module` in eval mode: normalization by
    the moving statistics, scale and offset still trained, which is what
    our TRAIN_BN False does (as matterport's frozen batch norm)."""
    import torch
    for child in module.modules():
        if isinstance(child, torch.nn.BatchNorm2d):
            child.eval()


def torch_environment():
    """The torch worker's environment. Under an AVX2 oneDNN cap (an AVX2
    host reproduced on a newer one) torch is capped alike: its oneDNN
    convolutions read ONEDNN_MAX_CPU_ISA too, its own vectorized kernels
    ATEN_CPU_CAPABILITY and its MKL matrix products MKL_ENABLE_INSTRUCTIONS.
    """
    env = dict(os.environ)
    if env.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2":
        env.setdefault("ATEN_CPU_CAPABILITY", "avx2")
        env.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    return env


class TorchClient(PipeClient):
    """Starts the worker in the torch virtualenv and calls it."""

    def __init__(self, threads, python=TORCH_PYTHON):
        if not os.path.exists(python):
            raise SystemExit(
                "compare_torchvision: no torch interpreter at {}; create the "
                "virtualenv with: python3 -m venv benchmarks/.torch-venv && "
                "benchmarks/.torch-venv/bin/pip install torch==2.14.1 "
                "torchvision==0.29.1".format(python))
        super().__init__(
            [python, os.path.abspath(__file__), "--torch-worker",
             "--threads", str(threads)], torch_environment(),
            "compare_torchvision")


############################################################
#  Our side (mrcnn's virtualenv)
############################################################

def timed_ms(function):
    start = time.perf_counter()
    function()
    return 1000 * (time.perf_counter() - start)


def alternate(ours, theirs, rounds):
    """Runs ours() and theirs() (each returning ms) `rounds` times in turn;
    returns their medians."""
    ours_ms, theirs_ms = [], []
    for _ in range(rounds):
        ours_ms.append(ours())
        theirs_ms.append(theirs())
    return statistics.median(ours_ms), statistics.median(theirs_ms), \
        ours_ms, theirs_ms


def inference_model(size, mixed_precision, rpn_conv_depth, model_dir):
    from inference import make_config
    from mrcnn import model as modellib
    config = make_config(
        "resnet50", size, num_classes=NUM_CLASSES,
        mixed_precision=mixed_precision, rpn_conv_depth=rpn_conv_depth,
        POST_NMS_ROIS_INFERENCE=PROPOSALS, DETECTION_MAX_INSTANCES=DETECTIONS,
        DETECTION_NMS_THRESHOLD=DETECTION_NMS)
    return modellib.MaskRCNN("inference", config, model_dir=model_dir)


def compare_inference(torch, image, args, report):
    """Fills report with the inference times, ratios and stage figures."""
    from inference import StageProfiler, gemm_peak_gflops

    torch_info = torch.call("inference_setup", image_path=args.image_path,
                            size=args.inference_size)
    report["torchvision_score_thresh"] = round(torch_info["score_thresh"], 6)

    def theirs():
        answer = torch.call("infer")
        report["torchvision_detections"] = answer["detections"]
        return 1000 * answer["seconds"]

    variants = [("float32", None, args.rpn_conv_depth)]
    if args.with_bf16:
        variants.append(("bf16", "mixed_bfloat16", args.rpn_conv_depth))
    if args.with_rpn_512:
        variants.append(("rpn512", None, 512))
    for name, precision, depth in variants:
        model = inference_model(args.inference_size, precision, depth,
                                args.model_dir)
        first_ms = timed_ms(lambda: model.detect([image]))
        theirs()  # warm-up (torch's first call allocates)
        detections = len(model.detect([image])[0]["class_ids"])
        ours_ms, theirs_ms, ours_runs, theirs_runs = alternate(
            lambda: timed_ms(lambda: model.detect([image])), theirs,
            args.rounds)
        suffix = "" if name == "float32" else "_" + name
        report["ours_inference_ms" + suffix] = round(ours_ms, 1)
        report["ours_inference_runs_ms" + suffix] = [round(v, 1)
                                                     for v in ours_runs]
        report["ours_first_detect_ms" + suffix] = round(first_ms, 1)
        report["ours_detections" + suffix] = detections
        report["torchvision_inference_ms" + suffix] = round(theirs_ms, 1)
        report["torchvision_inference_runs_ms" + suffix] = [
            round(v, 1) for v in theirs_runs]
        report["inference_ratio" + suffix] = round(ours_ms / theirs_ms, 3)
        report["inference_ratio_pairs" + suffix] = pair_ratios(ours_runs,
                                                               theirs_runs)
        if name in ("float32", "bf16"):
            stages = StageProfiler(model).profile(image, args.stage_repeats)
            peak = gemm_peak_gflops(
                dtype="bfloat16" if precision else "float32")
            report["gemm_peak_gflops" + suffix] = round(peak, 1)
            report["stages" + suffix] = with_peak_share(stages, peak)
        del model
        release_models()
    report["torchvision_stages_ms"] = torch.call(
        "inference_stages", repeats=args.stage_repeats)


def pair_ratios(ours_runs, theirs_runs):
    """ours / theirs of each alternating pair: runs next to each other saw
    about the same machine load, so these vary less than the times."""
    return [round(a / b, 3) for a, b in zip(ours_runs, theirs_runs)]


def with_peak_share(stages, peak):
    for stage in stages.values():
        if isinstance(stage, dict):
            rate = stage.get("gflop_per_s")
            stage["share_of_gemm_peak"] = (None if rate is None
                                           else round(rate / peak, 3))
    return stages


def release_models():
    """Frees the Keras state of models that are no longer used."""
    import gc
    import keras
    keras.backend.clear_session()
    gc.collect()


def training_batch(path, size, rpn_conv_depth):
    """Our training batch (MaskRCNNDataset) and the same images and
    instances for torchvision, saved to `path` (.npz)."""
    import numpy as np
    from train_step import make_train_config, shapes_dataset
    from mrcnn import utils
    from mrcnn.data import MaskRCNNDataset

    config = make_train_config("resnet50", size, images=TRAIN_IMAGES,
                               TRAIN_ROIS_PER_IMAGE=TRAIN_ROIS,
                               ROI_POSITIVE_RATIO=POSITIVE_FRACTION,
                               RPN_CONV_DEPTH=rpn_conv_depth,
                               LEARNING_RATE=TRAIN_LEARNING_RATE)
    dataset = shapes_dataset(TRAIN_IMAGES, size, seed=1)
    feed = MaskRCNNDataset(dataset, config, shuffle=False,
                           steps=1, workers=1)
    batch = feed[0]
    images, boxes, class_ids, masks, counts = [], [], [], [], []
    limit = config.MAX_GT_INSTANCES
    for image_id in dataset.image_ids[:TRAIN_IMAGES]:
        image = dataset.load_image(image_id)
        mask, ids = dataset.load_mask(image_id)
        box = utils.extract_bboxes(mask)[:, [1, 0, 3, 2]]  # x1, y1, x2, y2
        padded_boxes = np.zeros((limit, 4), np.float32)
        padded_ids = np.zeros((limit,), np.int64)
        padded_masks = np.zeros((limit,) + mask.shape[:2], bool)
        padded_boxes[:len(ids)] = box
        padded_ids[:len(ids)] = ids
        padded_masks[:len(ids)] = np.moveaxis(mask, -1, 0)
        images.append(image)
        boxes.append(padded_boxes)
        class_ids.append(padded_ids)
        masks.append(padded_masks)
        counts.append(len(ids))
    np.savez(path, images=np.stack(images), boxes=np.stack(boxes),
             class_ids=np.stack(class_ids), masks=np.stack(masks),
             counts=np.array(counts), num_classes=config.NUM_CLASSES)
    return config, batch


def compare_training(torch, args, report):
    from train_step import build_training_model, repeated_batch_feed

    batch_path = os.path.join(args.work_dir, "train_batch.npz")
    config, batch = training_batch(batch_path, args.train_size,
                                   args.rpn_conv_depth)
    torch.call("train_setup", batch_path=batch_path, size=args.train_size,
               anchor_sizes=[int(s) for s in config.RPN_ANCHOR_SCALES],
               learning_rate=TRAIN_LEARNING_RATE)
    steps = args.train_steps
    memory = repeated_batch_feed(batch, steps)
    theirs_losses = []

    def theirs():
        answer = torch.call("train", steps=steps)
        theirs_losses.append(answer["loss"])
        return 1000 * answer["seconds"]

    theirs()  # warm-up
    # float32 (the train_ratio target), then our mixed_bfloat16 step
    # against the same torchvision float32 step.
    precisions = [("", None)]
    if args.with_bf16:
        precisions.append(("_bf16", "mixed_bfloat16"))
    for name, precision in precisions:
        config.MIXED_PRECISION = precision
        model = build_training_model(config, args.model_dir)
        ours_losses = []

        def ours():
            # Several steps per fit call, as MaskRCNN.train runs many:
            # fit's own set-up is then shared out as it is in training.
            start = time.perf_counter()
            history = model.keras_model.fit(memory, epochs=1,
                                            steps_per_epoch=steps,
                                            verbose=0, shuffle=False)
            ours_losses.append(history.history["loss"][-1])
            return 1000 * (time.perf_counter() - start) / steps

        ours()  # traces the step
        ours_ms, theirs_ms, ours_runs, theirs_runs = alternate(
            ours, theirs, args.rounds)
        report["ours_train{}_losses".format(name)] = [
            round(v, 3) for v in ours_losses]
        report["ours_train{}_step_ms".format(name)] = round(ours_ms, 1)
        report["ours_train{}_step_runs_ms".format(name)] = [
            round(v, 1) for v in ours_runs]
        report["torchvision_train{}_step_runs_ms".format(name)] = [
            round(v, 1) for v in theirs_runs]
        report["train_ratio" + name] = round(ours_ms / theirs_ms, 3)
        report["train_ratio{}_pairs".format(name)] = pair_ratios(
            ours_runs, theirs_runs)
        del model
        release_models()
    report["torchvision_train_losses"] = [round(v, 3) for v in theirs_losses]
    report["torchvision_train_step_ms"] = round(statistics.median(
        report["torchvision_train_step_runs_ms"]), 1)


def add_auto_ratios(report):
    """*_ratio_auto: the ratios of the precision that MIXED_PRECISION
    "auto" picks on this machine (bfloat16 where native, else float32)."""
    from mrcnn import runtime
    auto = runtime.resolve_precision("auto")
    report["auto_precision"] = auto or "float32"
    suffix = "_bf16" if auto == "mixed_bfloat16" else ""
    for kind in ("inference", "train"):
        if kind + "_ratio" + suffix in report:
            report[kind + "_ratio_auto"] = report[kind + "_ratio" + suffix]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating timed runs per comparison")
    parser.add_argument("--stage-repeats", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=2,
                        help="training steps per timed run")
    parser.add_argument("--rpn-conv-depth", type=int, default=256)
    parser.add_argument("--inference-size", type=int, default=INFERENCE_SIZE)
    parser.add_argument("--train-size", type=int, default=TRAIN_SIZE)
    parser.add_argument("--with-rpn-512", action="store_true")
    parser.add_argument("--bf16", choices=("auto", "always", "never"),
                        default="auto",
                        help="time the mixed_bfloat16 runs: where bfloat16 "
                             "is native (auto), always or never")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--model-dir", default="/tmp/mrcnn_bench_logs")
    parser.add_argument("--torch-python", default=TORCH_PYTHON,
                        help="python of the virtualenv with torchvision")
    parser.add_argument("--torch-worker", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        serve(TorchWorker(args.threads))
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.join(HERE, ".."))
    from inference import configure_threads, peak_rss_mb, random_image
    import numpy as np

    from mrcnn import runtime
    from mrcnn.network import conv
    report = {"date": time.strftime("%Y-%m-%d"), "threads": args.threads,
              "cpu": runtime.cpu_summary(),
              "onednn_max_cpu_isa": os.environ.get(runtime.ONEDNN_ISA_ENV),
              "tf_enable_onednn_opts": os.environ.get(
                  runtime.ONEDNN_ENV),
              "conv_kernels": os.environ.get(conv.KERNELS_ENV, "auto"),
              "torch_cpu_capability": torch_environment().get(
                  "ATEN_CPU_CAPABILITY"),
              "inference_size": args.inference_size,
              "train_size": args.train_size,
              "rpn_conv_depth": args.rpn_conv_depth,
              "load_average_before": [round(v, 2)
                                      for v in os.getloadavg()]}
    # Emulated bfloat16 is slower than float32 and not what "auto" runs;
    # under an oneDNN ISA cap it may not run at all.
    args.with_bf16 = {"always": True, "never": False}.get(
        args.bf16, runtime.native_bf16())
    report["bf16_timed"] = args.with_bf16
    torch = TorchClient(args.threads, args.torch_python)
    configure_threads(args.threads)
    with tempfile.TemporaryDirectory() as work_dir:
        args.work_dir = work_dir
        image = random_image(args.inference_size)
        args.image_path = os.path.join(work_dir, "image.npy")
        np.save(args.image_path, image)
        try:
            if not args.skip_inference:
                compare_inference(torch, image, args, report)
            if not args.skip_train:
                compare_training(torch, args, report)
        finally:
            torch.close()
    add_auto_ratios(report)
    report["ours_peak_rss_mb"] = round(peak_rss_mb(), 1)
    report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
