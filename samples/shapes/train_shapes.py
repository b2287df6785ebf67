"""Train Mask R-CNN on synthetic shapes from random initialization (CPU).

    python samples/shapes/train_shapes.py --out logs/shapes_demo

Trains a small ResNet18-FPN Mask R-CNN, then measures mAP@0.5 on freshly
generated validation images and writes a PNG of detections. Prints one JSON
line with the results. This is `make demo`.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from mrcnn import model as modellib, utils, visualize  # noqa: E402
from samples.shapes.shapes import ShapesConfig, ShapesDataset  # noqa: E402


TARGET_MAP50 = 0.9


class InferenceConfig(ShapesConfig):
    IMAGES_PER_GPU = 1


def evaluate_map(model, dataset, iou_threshold=0.5):
    """Mean of the per-image AP at iou_threshold (the original metric)."""
    aps = []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        gt_mask, gt_class_ids = dataset.load_mask(image_id)
        gt_boxes = utils.extract_bboxes(gt_mask)
        r = model.detect([image])[0]
        ap, _, _, _ = utils.compute_ap(
            gt_boxes, gt_class_ids, gt_mask, r["rois"], r["class_ids"],
            r["scores"], r["masks"], iou_threshold=iou_threshold)
        aps.append(ap)
    return float(np.mean(aps))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="logs/shapes_demo",
                        help="directory for checkpoints, logs and the PNG")
    parser.add_argument("--epochs", type=int, default=12,
                        help="epochs in all; the last 3 at a tenth of the "
                             "learning rate")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per epoch (default: the config's)")
    parser.add_argument("--train-images", type=int, default=500)
    parser.add_argument("--val-images", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    config = ShapesConfig()
    if args.steps:
        config.STEPS_PER_EPOCH = args.steps
    config.display()
    size = int(config.IMAGE_SHAPE[0])
    train_set = ShapesDataset()
    train_set.load_shapes(args.train_images, size, size, seed=args.seed)
    train_set.prepare()
    val_set = ShapesDataset()
    val_set.load_shapes(args.val_images, size, size, seed=args.seed + 1000)
    val_set.prepare()

    start = time.time()
    model = modellib.MaskRCNN(mode="training", config=config,
                              model_dir=args.out)
    # The full rate, then a tenth of it for the last three epochs.
    schedule = [(config.LEARNING_RATE, max(1, args.epochs - 3)),
                (config.LEARNING_RATE / 10, args.epochs)]
    for learning_rate, epochs in schedule:
        if epochs > model.epoch:
            model.train(train_set, val_set, learning_rate=learning_rate,
                        epochs=epochs, layers="all")
    train_minutes = (time.time() - start) / 60

    inference = modellib.MaskRCNN(mode="inference", config=InferenceConfig(),
                                  model_dir=args.out)
    checkpoint = model.find_last()
    inference.load_weights(checkpoint, by_name=True)
    map50 = evaluate_map(inference, val_set)

    image_id = val_set.image_ids[0]
    image = val_set.load_image(image_id)
    r = inference.detect([image])[0]
    png = os.path.join(args.out, "shapes_detections.png")
    visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
                                val_set.class_names, r["scores"],
                                figsize=(6, 6), save_path=png)
    print(json.dumps({"demo": "shapes", "mAP50": round(map50, 4),
                      "target_mAP50": TARGET_MAP50,
                      "target_met": map50 >= TARGET_MAP50,
                      "train_minutes": round(train_minutes, 2),
                      "total_minutes": round((time.time() - start) / 60, 2),
                      "checkpoint": checkpoint, "png": png}))
    if map50 < TARGET_MAP50:
        print("mAP@0.5 {:.3f} is below the demo's target of {} (train "
              "longer with --epochs)".format(map50, TARGET_MAP50),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
