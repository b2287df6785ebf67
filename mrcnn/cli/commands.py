"""Command line: train, detect, evaluate and check datasets.

    mrcnn train --dataset data/balloon --format via --weights coco --layers heads --epochs 10
    mrcnn detect --weights last --name balloon photo1.jpg photo2.jpg --out results/
    mrcnn evaluate --dataset data/balloon/val --format via --weights last --name balloon
    mrcnn check-dataset data/balloon/train
    mrcnn check-dataset data/balloon/train --anchors --set IMAGE_MAX_DIM=512 --set IMAGE_MIN_DIM=512

Every training run writes ``run_config.json`` (class names and the config
values that differ from the defaults) beside its checkpoints, so `detect`
and `evaluate` rebuild the same model from the weights path alone. Its
class names are the reference: the validation set of `train` and the
dataset of `evaluate` get their class ids by name from them.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Re-exports: the samples and earlier code use these as mrcnn.cli.commands.X.
from mrcnn.cli.setup import (COCO_CLASS_NAMES,  # noqa: E402,F401
                             COCO_WEIGHTS_FILE, HEAD_LAYERS, OVERRIDABLE,
                             RUN_CONFIG, TINY_SETTINGS, CliError,
                             PRESET_NAMES, add_sample_arguments,
                             find_last_checkpoint, preset_overrides,
                             heads_to_exclude, load_weights_arg, make_config,
                             parse_overrides, read_run_config, resolve_weights,
                             sample_config, sample_model, weights_file,
                             write_run_config)
from mrcnn.cli.setup import (load_dataset, load_weights,  # noqa: E402,F401
                             loader_options, report_error)
from mrcnn.cli.outputs import (jsonable as _jsonable,  # noqa: E402,F401
                               output_stems, write_evaluation, write_json)


def cmd_train(args):
    """`mrcnn train`: trains on --dataset and writes run_config.json beside
    the checkpoints. Returns the exit status."""
    from mrcnn import model as modellib
    overrides = preset_overrides(getattr(args, "preset", None),
                                 parse_overrides(args.set))
    options = loader_options(args)
    train_set = load_dataset(args.dataset, args.format, args.train_subset,
                             options, reference=continued_run_classes(args))
    val_set = None
    if args.val_dataset or args.val_subset:
        # The training set's ids by name: a class the validation set
        # lacks must not shift the ids of the classes after it.
        val_set = load_dataset(args.val_dataset or args.dataset, args.format,
                               args.val_subset, options,
                               reference=train_set.class_names)
    if args.steps:
        overrides["STEPS_PER_EPOCH"] = args.steps
    if val_set is None:
        overrides.setdefault("VALIDATION_STEPS", 0)
    config = make_config(args.name, train_set.num_classes, overrides)
    kind, path = resolve_weights(args.weights, args.logs, args.name)
    model = modellib.MaskRCNN(mode="training", config=config,
                              model_dir=args.logs)
    if path:
        skip = ("coco", "path") if args.exclude_heads else ("coco",)
        load_weights(model, path, exclude=heads_to_exclude(kind, skip))
    write_run_config(model.create_log_dir(), args.name, train_set.class_names,
                     overrides)
    augmentation = None
    if args.augment:
        from mrcnn.data.augment import default_augmentation
        augmentation = default_augmentation()
    model.train(train_set, val_set,
                learning_rate=args.lr or config.LEARNING_RATE,
                epochs=args.epochs, layers=args.layers,
                augmentation=augmentation)
    print(json.dumps({"checkpoint": model.find_last(), "epochs": model.epoch}))
    return 0


def continued_run_classes(args):
    """The class names of the run whose checkpoint --weights continues (the
    run_config.json beside it), or None. The training set is numbered by
    them, so that class k is still the class the loaded heads learned as
    k, and a class that run never saw is an error naming it. None for
    coco/imagenet/none, with --exclude-heads (new heads) and for weights
    without a run_config.json."""
    if args.exclude_heads or args.weights is None \
            or args.weights.lower() in ("coco", "imagenet", "none"):
        return None
    _, path = resolve_weights(args.weights, args.logs, args.name)
    run = read_run_config(path) if path else None
    return run["class_names"] if run else None


def model_classes(args):
    """What --weights says of the model: {"path", "class_names", "name",
    "overrides"}. The class names are those of the run_config.json beside
    the weights, else COCO's for --weights coco, else --class-names (with a
    note on stderr that no run_config.json was found), else None."""
    kind, path = resolve_weights(args.weights, args.logs, args.name)
    if kind == "none":
        raise CliError("detect/evaluate need --weights")
    run = read_run_config(path) if path else None
    info = {"path": path, "class_names": None, "name": args.name,
            "overrides": parse_overrides(args.set)}
    if run:
        info.update(class_names=run["class_names"], name=run["name"],
                    overrides=dict(run["overrides"], **info["overrides"]))
    elif kind == "coco":
        info.update(class_names=COCO_CLASS_NAMES, name="coco")
    elif args.class_names:
        info["class_names"] = ["BG"] + [
            c.strip() for c in args.class_names.split(",")]
        print("note: no {} beside {}: class ids follow --class-names"
              .format(RUN_CONFIG, path), file=sys.stderr)
    return info


def inference_model(args, model_info=None):
    """Builds the inference model for --weights (model_info: what
    model_classes(args) returned, with class names); returns it and its
    class names."""
    from mrcnn import model as modellib
    info = model_info or model_classes(args)
    class_names, path = info["class_names"], info["path"]
    if class_names is None:
        raise CliError("no {} beside {}: pass --class-names a,b,c".format(
            RUN_CONFIG, path))
    overrides, name = dict(info["overrides"]), info["name"]
    for key in ("STEPS_PER_EPOCH", "VALIDATION_STEPS"):
        overrides.pop(key, None)
    if args.min_confidence is not None:
        overrides["DETECTION_MIN_CONFIDENCE"] = args.min_confidence
    config = make_config(name, len(class_names), overrides, inference=True)
    model = modellib.MaskRCNN(mode="inference", config=config,
                              model_dir=args.logs)
    load_weights(model, path)
    return model, class_names


def cmd_detect(args):
    """`mrcnn detect`: detects objects in the images, writing
    <stem>_detections.png for each (stems made distinct: output_stems) and
    detections.json (COCO-style results with RLE masks, written atomically)
    to --out. Returns the exit status."""
    import numpy as np
    from mrcnn import visualize
    from mrcnn.structures import image_io
    from pycocotools import mask as mask_utils
    if args.overlap is not None and not args.tile:
        raise CliError("--overlap needs --tile")
    model, class_names = inference_model(args)
    os.makedirs(args.out, exist_ok=True)
    results = []
    stems = output_stems(args.images)
    for image_id, image_path in enumerate(args.images):
        try:  # the decoder of training: RGB uint8, stored frame
            image = image_io.read_image(image_path)
        except (OSError, ValueError) as e:
            raise CliError("cannot read image {}: {}".format(image_path, e))
        r = (model.detect_tiled([image], tile=args.tile,
                                overlap=args.overlap)[0] if args.tile
             else model.detect([image])[0])
        png = os.path.join(args.out, stems[image_id] + "_detections.png")
        visualize.save_instances(png, image, r["rois"], r["masks"],
                                 r["class_ids"], class_names, r["scores"])
        for i in range(len(r["class_ids"])):
            y1, x1, y2, x2 = [int(v) for v in r["rois"][i]]
            rle = mask_utils.encode(np.asfortranarray(
                r["masks"][..., i].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            results.append({
                "image_id": image_id, "file_name": image_path,
                "category_id": int(r["class_ids"][i]),
                "category_name": class_names[int(r["class_ids"][i])],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(r["scores"][i]), "segmentation": rle})
        print("{}: {} instances -> {}".format(image_path, len(r["class_ids"]),
                                              png))
    json_path = os.path.join(args.out, "detections.json")
    write_json(json_path, results)
    print(json.dumps({"images": len(args.images), "detections": len(results),
                      "results": json_path}))
    return 0


def cmd_evaluate(args):
    """`mrcnn evaluate`: COCO metrics (per class too), mAP and the confusion
    matrix of --weights on --dataset (mrcnn.evaluation.evaluate.evaluate_model),
    written to --out as metrics.json, confusion_matrix.png and
    per_class_ap.png, and printed as one JSON line. Returns the exit
    status."""
    from mrcnn.evaluation import evaluate
    info = model_classes(args)
    # The model's class names number the dataset's classes by name, so
    # that metrics compare each class with itself.
    dataset = load_dataset(args.dataset, args.format, args.subset,
                           loader_options(args), reference=info["class_names"])
    if info["class_names"] is None:
        print("note: no {} beside {} and no --class-names: the model's "
              "classes are taken to be the dataset's own, in its order ({})"
              .format(RUN_CONFIG, info["path"],
                      ", ".join(dataset.class_names)), file=sys.stderr)
        info["class_names"] = dataset.class_names
    model, _ = inference_model(args, info)
    metrics = evaluate.evaluate_model(model, dataset, limit=args.limit,
                                      verbose=True, confusion_iou=args.iou)
    metrics["files"] = write_evaluation(metrics, args.out)
    print(json.dumps(_jsonable(metrics)))
    return 0


def cmd_check_dataset(args):
    """`mrcnn check-dataset`: lists every problem found in a dataset.
    Returns 1 when there are errors, else 0."""
    from mrcnn.datasets import check
    overrides = parse_overrides(args.set)
    if overrides and not args.anchors:
        raise CliError("--set needs --anchors (it sets the config whose "
                       "anchors are checked)")
    try:
        problems = check.check_path(args.path, format=args.format,
                                    subset=args.subset, **loader_options(args))
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e))
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print("{}: {}: {}".format(p.severity.upper(), p.file, p.message))
    for cause, (instances, images) in sorted(
            check.dropped_counts(problems).items()):
        print("dropped in training: {} instance(s) of {} image(s): {}"
              .format(instances, images, cause))
    print("{} error(s), {} warning(s) in {}".format(
        len(errors), len(problems) - len(errors), args.path))
    if errors:
        if args.anchors:
            print("anchor coverage not computed: fix the errors first")
        return 1
    from mrcnn.training.class_balance import class_report
    dataset = load_dataset(args.path, args.format, args.subset,
                           loader_options(args))
    print(class_report(dataset))
    if args.anchors:
        print(anchor_report_text(dataset, overrides))
    return 0


def anchor_report_text(dataset, overrides):
    """check-dataset --anchors: the anchor coverage of the dataset under the
    default Config with the --set overrides (mrcnn.data.anchor_fit)."""
    from mrcnn.data import anchor_fit
    config = make_config("check", dataset.num_classes, overrides)
    try:
        report = anchor_fit.anchor_report(dataset, config)
    except ValueError as e:  # an image resizing cannot handle, named
        raise CliError(str(e))
    return anchor_fit.format_anchor_report(report)


# The dataset formats of mrcnn.datasets (not imported here, so that
# `mrcnn --help` stays quick).
_FORMATS = ["coco", "via", "labelme", "masks"]


def _add_loader_args(p):
    """Options of the dataset loaders (mrcnn.datasets.load_dataset)."""
    p.add_argument("--class-attribute", default=None,
                   help="VIA: region attribute holding the class name")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names to use (in order)")
    p.add_argument("--default-class", default=None,
                   help="class name when annotations carry none")


def _add_run_args(p):
    """Options naming a run: its logs folder, name and Config overrides."""
    p.add_argument("--logs", default="logs",
                   help="directory of runs and checkpoints (default logs)")
    p.add_argument("--name", default="custom",
                   help="run name, used for checkpoint names")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a Config value (JSON; true/false/yes/no "
                        "for booleans), checked at once; repeatable")


def _add_train_parser(sub):
    p = sub.add_parser("train", help="train on a dataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--format", choices=_FORMATS)
    p.add_argument("--train-subset", default=None,
                   help="e.g. train (VIA: <dataset>/train/via_region_data.json)")
    p.add_argument("--val-dataset", default=None)
    p.add_argument("--val-subset", default=None)
    p.add_argument("--weights", default="coco",
                   help="coco, imagenet, last, none or a path")
    p.add_argument("--exclude-heads", action="store_true",
                   help="skip the class-specific heads of a weights path")
    p.add_argument("--layers", default="heads",
                   help="heads, 3+, 4+, 5+, all or a regex")
    p.add_argument("--preset", default=None, choices=PRESET_NAMES,
                   help="a set of Config values (mrcnn.config_presets); "
                        "from-scratch: for --weights none --layers all. "
                        "--set values win over it")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--augment", action="store_true",
                   help="flips, rotations, brightness and blur (imgaug)")
    _add_loader_args(p)
    _add_run_args(p)
    p.set_defaults(func=cmd_train)


def cmd_export(args):
    """`mrcnn export`: the model of --weights as a SavedModel, ONNX or
    TFLite file (MaskRCNN.export), built in float32."""
    info = model_classes(args)
    info["overrides"]["MIXED_PRECISION"] = None  # converters take float32
    model, class_names = inference_model(args, info)
    size = args.image_size and args.image_size.split(",")
    if size and (len(size) != 2 or not all(v.strip().isdigit() for v in size)):
        raise CliError("--image-size takes H,W, got " + args.image_size)
    size = size and [int(v) for v in size]
    options = {"weights": args.tflite_weights, "image_shape": size} \
        if args.format == "tflite" else {}
    model.export(args.out, format=args.format, class_names=class_names,
                 full_masks=not args.no_full_masks, **options)
    print(json.dumps({"format": args.format, "path": args.out,
                      "class_names": class_names}))
    return 0


def _add_export_args(p):
    p.add_argument("--format", default="saved_model",
                   choices=["saved_model", "onnx", "tflite"])
    p.add_argument("--out", required=True, help="folder or file to write")
    p.add_argument("--no-full-masks", action="store_true",
                   help="leave out the image-size masks (mask_probs stay)")
    p.add_argument("--image-size", default=None, metavar="H,W",
                   help="tflite: the fixed input size (default: molded)")
    p.add_argument("--tflite-weights", default="float32",
                   choices=["float32", "float16", "int8"])


def _add_detect_and_evaluate_parsers(sub):
    for name, func, help_ in (("detect", cmd_detect, "detect objects"),
                              ("evaluate", cmd_evaluate, "COCO metrics"),
                              ("export", cmd_export,
                               "SavedModel, ONNX or LiteRT file")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--weights", required=True,
                       help="coco, last or a checkpoint path")
        p.add_argument("--class-names", default=None,
                       help="comma-separated names when the weights have no "
                            + RUN_CONFIG)
        p.add_argument("--min-confidence", type=float, default=None)
        _add_run_args(p)
        if name == "detect":
            p.add_argument("images", nargs="+")
            p.add_argument("--out", default="detections")
            p.add_argument("--tile", type=int, default=None,
                           help="detect on overlapping tiles of this many "
                                "pixels and merge them (large images)")
            p.add_argument("--overlap", type=int, default=None,
                           help="pixels shared by neighbouring tiles "
                                "(default tile / 4)")
        elif name == "export":
            _add_export_args(p)
        else:
            p.add_argument("--dataset", required=True)
            p.add_argument("--format", choices=_FORMATS)
            p.add_argument("--subset", default=None)
            p.add_argument("--limit", type=int, default=None)
            p.add_argument("--out", default="evaluation",
                           help="folder for metrics.json, "
                                "confusion_matrix.png and per_class_ap.png")
            p.add_argument("--iou", type=float, default=0.5,
                           help="mask IoU at which the confusion matrix "
                                "matches detections (default 0.5)")
            _add_loader_args(p)
        p.set_defaults(func=func)


def _add_check_parser(sub):
    p = sub.add_parser("check-dataset",
                       help="list every problem found in a dataset")
    p.add_argument("path")
    p.add_argument("--format", choices=_FORMATS)
    p.add_argument("--subset", default=None)
    p.add_argument("--anchors", action="store_true",
                   help="share of boxes the RPN anchors cover at "
                        "RPN_POSITIVE_IOU, and anchors that cover more")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="with --anchors: override a Config value (JSON), "
                        "repeatable")
    _add_loader_args(p)
    p.set_defaults(func=cmd_check_dataset)


def build_parser():
    """The argparse parser of the `mrcnn` command and its sub-commands
    (train, detect, evaluate, export, check-dataset)."""
    parser = argparse.ArgumentParser(
        prog="mrcnn",
        description="Mask R-CNN: train, detect, evaluate, export.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub)
    _add_detect_and_evaluate_parsers(sub)
    _add_check_parser(sub)
    return parser


def main(argv=None):
    """Entry point of the `mrcnn` command; argv defaults to sys.argv[1:].
    Returns the exit status (2 for a user error, printed without a
    traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        return report_error("mrcnn", args.command, e)


if __name__ == "__main__":
    sys.exit(main())
