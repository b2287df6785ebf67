"""Where a training step's time goes, per op type, printed as one JSON line.

Builds a training model, runs --warmup steps (tracing), times --steps
steps through keras_model.fit (as MaskRCNN.train runs them) with the
process's user and system CPU time, then records one more step with
TensorFlow's profiler and sums the ops' run time by op type, forward and
backward (the ops under ``gradient_tape/``) apart. Two set-ups:

* ``--setup compare``: compare_torchvision.py's training batch (ResNet50-FPN,
  512x512, 2 images, 200 ROIs of which 33 % positive, RPN_CONV_DEPTH 256,
  batch norm frozen);
* ``--setup demo``: the shapes demo (samples/shapes: ResNet18-FPN at 128x128,
  4 images) with its first phase's trained batch norm, or with
  ``--frozen-bn`` its fine-tuning phase's frozen one.

CPU flags (the ones that decide oneDNN's kernels) and the oneDNN ISA cap
(``ONEDNN_MAX_CPU_ISA``, e.g. AVX2 on an AVX-512 host) are reported, so the
same script tells the two CPU generations apart::

    python benchmarks/profile_step.py --setup compare
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/profile_step.py --setup demo

``ops_ms`` lists the costliest (direction, op type) pairs; ``op_total_ms``
is the sum over all ops of the profiled step (ops of the two threads can
overlap, so it can exceed the step's wall time), ``step_s`` the timed
steps' mean wall time.
"""
import argparse
import collections
import glob
import json
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import mrcnn  # noqa: E402,F401  (before TensorFlow: runtime.prefer_onednn)


def demo_batch(frozen_bn, images=4):
    """The shapes demo's config and one batch of its feed."""
    from mrcnn.data import MaskRCNNDataset
    from samples.shapes.shapes import ShapesConfig, ShapesDataset

    config = type("ProfileShapesConfig", (ShapesConfig,), {
        "TRAIN_BN": False if frozen_bn else ShapesConfig.TRAIN_BN,
        "IMAGES_PER_GPU": images})()
    dataset = ShapesDataset()
    size = int(config.IMAGE_SHAPE[0])
    dataset.load_shapes(images, size, size, seed=1)
    dataset.prepare()
    feed = MaskRCNNDataset(dataset, config, shuffle=False, steps=1,
                           workers=1)
    return config, feed[0]


def op_times(logdir, by_node=False):
    """{(direction, op type): [ms, count]} from the profiler's trace; with
    `by_node`, {(direction, "<node name>:<op type>"): [ms, count]}."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"),
                            recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.defaultdict(lambda: [0.0, 0])
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            # Kernels run on the executor's threads ("tf_Compute/..."),
            # named "<node name>:<op type>".
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name:
                    continue
                node, op_type = name.rsplit(":", 1)
                direction = "bwd" if "gradient_tape" in node else "fwd"
                entry = totals[(direction, name if by_node else op_type)]
                entry[0] += event.duration_ps / 1e9
                entry[1] += 1
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=("compare", "demo"),
                        default="compare")
    parser.add_argument("--frozen-bn", action="store_true",
                        help="demo set-up: TRAIN_BN False (fine-tuning)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--mixed-precision", default=None)
    parser.add_argument("--by-node", action="store_true",
                        help="ops_ms by graph node instead of op type")
    parser.add_argument("--no-fold", action="store_true",
                        help="FOLD_BATCH_NORM False (the unfolded graph)")
    args = parser.parse_args()

    from mrcnn import runtime
    threads = runtime.configure()
    import compare_torchvision
    from train_step import build_training_model, repeated_batch_feed
    import tensorflow as tf

    work = tempfile.mkdtemp(prefix="mrcnn_profile_")
    if args.setup == "compare":
        config, batch = compare_torchvision.training_batch(
            os.path.join(work, "batch.npz"), compare_torchvision.TRAIN_SIZE,
            256)
    else:
        config, batch = demo_batch(args.frozen_bn)
    config.MIXED_PRECISION = args.mixed_precision
    config.FOLD_BATCH_NORM = not args.no_fold
    model = build_training_model(config, work)
    keras_model = model.keras_model

    def fit(steps):
        keras_model.fit(repeated_batch_feed(batch, steps), epochs=1,
                        steps_per_epoch=steps, verbose=0, shuffle=False)

    load_before = os.getloadavg()
    fit(args.warmup)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    fit(args.steps)
    wall = (time.perf_counter() - start) / args.steps
    usage = resource.getrusage(resource.RUSAGE_SELF)
    logdir = os.path.join(work, "trace")
    tf.profiler.experimental.start(logdir)
    fit(1)
    tf.profiler.experimental.stop()
    totals = op_times(logdir, args.by_node)
    ranked = sorted(totals.items(), key=lambda item: -item[1][0])
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "setup": args.setup,
        "frozen_bn": bool(args.frozen_bn or not config.TRAIN_BN),
        "fold_batch_norm": config.FOLD_BATCH_NORM,
        "precision": model.precision,
        "threads": threads, "cpu": runtime.cpu_summary(),
        "onednn_max_cpu_isa": os.environ.get(runtime.ONEDNN_ISA_ENV),
        "tf_enable_onednn_opts": os.environ.get(runtime.ONEDNN_ENV),
        "step_s": round(wall, 3),
        "user_cpu_s_per_step": round(
            (usage.ru_utime - usage_before.ru_utime) / args.steps, 3),
        "system_cpu_s_per_step": round(
            (usage.ru_stime - usage_before.ru_stime) / args.steps, 3),
        "page_faults_per_step": round(
            (usage.ru_minflt - usage_before.ru_minflt) / args.steps),
        "context_switches_per_step": round(
            (usage.ru_nvcsw + usage.ru_nivcsw - usage_before.ru_nvcsw
             - usage_before.ru_nivcsw) / args.steps),
        "op_total_ms": round(sum(v[0] for v in totals.values()), 1),
        "ops_ms": [[d, op, round(ms, 1), count]
                   for (d, op), (ms, count) in ranked[:args.top]],
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
