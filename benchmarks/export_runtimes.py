"""detect() against the exported model in onnxruntime and LiteRT (float32,
float16, int8 weights), torchvision's Mask R-CNN as the anchor: one JSON
line.

ResNet50-FPN, 81 classes, one 1024x1024 shapes image on a smooth random
texture, random weights made to score, box and mask like a trained model
(tests/tiny.py: like_a_trained_model, with class logits 4 times
sharper so that the scores lie apart, see build_model), --threads
threads everywhere (TensorFlow through MRCNN_CPU_THREADS, onnxruntime
intra_op_num_threads, LiteRT num_threads, torch.set_num_threads). Each exported file runs in a process of its own
that imports neither TensorFlow nor mrcnn; its peak resident memory is
that process's (VmHWM). detect()'s peak is this process's before any
export.

The line holds, for detect() and each runtime: the median time of
--rounds runs after one warm-up, the file size, the peak memory, and the
agreement with detect() on that image (mrcnn.inference.agreement: the
test rules, class ids equal, scores within 1e-3, boxes within 1 pixel,
mask IoU >= 0.95 for every detection, with detections paired by class and
box rather than by list index, and a swap among near-equal scores at the
100-detection cut counted apart; the largest differences over the pairs
are reported, so that the float16 and int8 tolerances can be read off). torchvision_ms comes from the same run
(benchmarks/compare_torchvision.py's worker in benchmarks/.torch-venv;
null where that virtualenv is missing or with --tiny).

    python benchmarks/export_runtimes.py             # the full run
    python benchmarks/export_runtimes.py --tiny      # seconds: a check
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WEIGHT_TYPES = ("float32", "float16", "int8")
CLASS_SHARPENING = 4.0  # the ResNet50 model's class logits (build_model)


############################################################
#  The runtime worker: no TensorFlow, no mrcnn
############################################################

def run_exported(kind, path, image_path, threads, rounds, out_path):
    """Times one exported file on the image; saves its outputs (npz)."""
    import numpy as np

    image = np.load(image_path)[None]
    if kind == "onnx":
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]

        def infer():
            return dict(zip(names, session.run(None, {"images": image})))
    else:
        from ai_edge_litert.interpreter import Interpreter
        runner = Interpreter(path, num_threads=threads).get_signature_runner()

        def infer():
            return runner(images=image)
    outputs = infer()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        outputs = infer()
        times.append(time.perf_counter() - start)
    np.savez(out_path, **outputs)
    leaked = [m for m in sys.modules
              if m.split(".")[0] in ("tensorflow", "mrcnn")]
    return {"ms": 1000 * statistics.median(times),
            "peak_rss_mb": peak_rss_mb(), "imports_tf_or_mrcnn": leaked}


def peak_rss_mb():
    """This process's peak resident memory (VmHWM: reset by exec, unlike
    ru_maxrss, which a worker would inherit from the driver)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


############################################################
#  The driver (mrcnn's virtualenv)
############################################################

def build_model(args, model_dir):
    sys.path.insert(0, HERE)
    sys.path.insert(0, REPO)
    from inference import make_config
    from mrcnn import model as modellib
    from tests.tiny import TinyConfig, like_a_trained_model

    if args.tiny:
        config = type("TinyExport", (TinyConfig,), dict(
            NAME="tiny_export", IMAGES_PER_GPU=1,
            DETECTION_MIN_CONFIDENCE=0.0))()
    else:
        config = make_config("resnet50", args.size, num_classes=81)
    model = modellib.MaskRCNN("inference", config, model_dir=model_dir)
    like_a_trained_model(model.keras_model)
    if not args.tiny:
        # 81 classes of nearly equal logits give scores 0.026-0.032, many
        # within 1e-7 of each other: which a runtime keeps, and in which
        # order non-max suppression meets them, is then decided by the
        # last bit. 4 times sharper, on the textured image, the 100 best
        # lie 0.25-0.63 and at least 3e-5 apart (measured 2026-12-07).
        layer = model.keras_model.get_layer("mrcnn_class_logits")
        layer.set_weights([w * CLASS_SHARPENING
                           for w in layer.get_weights()])
    return model


def test_image(size, textured=True):
    """A shapes-dataset image (squares, circles, triangles) for the model
    to detect; textured: on smooth random texture (+-40 grey levels,
    seeded) rather than a plain background, whose identical regions give
    a random model's detections identical scores."""
    import numpy as np
    import scipy.ndimage
    from samples.shapes.shapes import ShapesDataset
    dataset = ShapesDataset()
    dataset.load_shapes(1, size, size, seed=3, max_shapes=6)
    dataset.prepare()
    image = dataset.load_image(0)
    if not textured:
        return image
    noise = np.random.default_rng(0).normal(0, 1, image.shape)
    texture = scipy.ndimage.gaussian_filter(noise, (6, 6, 0))
    texture = (texture / texture.std() * 40).astype(np.int16)
    return np.clip(image.astype(np.int16) + texture, 0, 255).astype(np.uint8)


def time_detect(model, image, rounds):
    model.detect([image])  # warm-up (traces the graph)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = model.detect([image])[0]
        times.append(time.perf_counter() - start)
    return result, 1000 * statistics.median(times)


def torchvision_ms(args, image_path):
    if args.tiny:
        return None
    sys.path.insert(0, HERE)
    from compare_torchvision import TORCH_PYTHON, TorchClient
    if not os.path.exists(TORCH_PYTHON):
        return None
    torch = TorchClient(args.threads)
    try:
        torch.call("inference_setup", image_path=image_path, size=args.size)
        torch.call("infer")  # warm-up
        times = [torch.call("infer")["seconds"] for _ in range(args.rounds)]
    finally:
        torch.close()
    return 1000 * statistics.median(times)


def run_worker(kind, path, image_path, args, out_path):
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", kind, path,
         image_path, out_path, "--threads", str(args.threads),
         "--rounds", str(args.rounds)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    if done.returncode:
        raise SystemExit("export_runtimes: the {} worker failed:\n{}".format(
            kind, done.stderr[-3000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main_driver(args):
    import numpy as np

    load_before = os.getloadavg()
    os.environ.setdefault("MRCNN_CPU_THREADS", str(args.threads))
    work = tempfile.mkdtemp(prefix="export_runtimes_")
    model = build_model(args, os.path.join(work, "logs"))
    from mrcnn.inference import export
    from mrcnn.inference.agreement import compare_detections
    from whole_feed import cpu_description  # the model name and flags
    size = model.config.IMAGE_MAX_DIM
    image = test_image(size, textured=not args.tiny)
    image_path = os.path.join(work, "image.npy")
    np.save(image_path, image)
    expected, detect_ms = time_detect(model, image, args.rounds)
    report = {"benchmark": "export_runtimes", "tiny": args.tiny,
              "date": time.strftime("%Y-%m-%d"),
              "load_average_before": load_before,
              "image_size": size, "threads": args.threads,
              "image": "shapes" if args.tiny else "shapes on texture",
              "class_sharpening": None if args.tiny else CLASS_SHARPENING,
              "cpu": cpu_description(),
              "detect_ms": detect_ms, "detect_peak_rss_mb": peak_rss_mb(),
              "torchvision_ms": torchvision_ms(args, image_path)}
    exports = [("onnx", "mask_rcnn.onnx", {"format": "onnx"})] + [
        ("tflite_" + w, "mask_rcnn_{}.tflite".format(w),
         {"format": "tflite", "weights": w}) for w in WEIGHT_TYPES]
    for name, filename, options in exports:
        path = os.path.join(work, filename)
        start = time.perf_counter()
        model.export(path, **options)
        entry = {"export_s": time.perf_counter() - start,
                 "file_mb": os.path.getsize(path) / 2 ** 20}
        out_path = os.path.join(work, name + ".npz")
        entry.update(run_worker(name.split("_")[0], path, image_path, args,
                                out_path))
        outputs = dict(np.load(out_path))
        (actual,) = export.results_from_serving(outputs)
        entry.update(compare_detections(
            expected, actual,
            max_detections=model.config.DETECTION_MAX_INSTANCES,
            min_score=model.config.DETECTION_MIN_CONFIDENCE))
        report[name] = entry
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="the tests' tiny model at 64 px: a quick check")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", nargs=4, default=None,
                        metavar=("KIND", "PATH", "IMAGE", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, path, image_path, out_path = args.worker
        print(json.dumps(run_exported(kind, path, image_path, args.threads,
                                      args.rounds, out_path)))
    else:
        main_driver(args)


if __name__ == "__main__":
    main()
