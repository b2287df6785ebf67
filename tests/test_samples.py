"""The balloon and COCO samples: the balloon dataset on the real data, a
tiny balloon training run and its color splash; the COCO sample's loader,
download failure and evaluation on a tiny COCO fixture."""

import contextlib
import io
import json
import os
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
import skimage.color
import skimage.draw
import skimage.io

from conftest import balloon_dir
from mrcnn.cli import commands as cli
from mrcnn import model as modellib
from samples.balloon import balloon
from samples.coco import coco


def quiet(function, *args, **kwargs):
    """(result, printed text) of a call, its stdout captured."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = function(*args, **kwargs)
    return result, out.getvalue()


def balloon_root():
    path = balloon_dir()
    if not (path / "train" / "via_region_data.json").exists():
        pytest.skip("balloon dataset not found at {} (set MRCNN_BALLOON_DIR)"
                    .format(path))
    return path


def via_regions(json_path):
    """{filename: [shape_attributes]} straight from a VIA 1.x json."""
    with open(json_path) as f:
        entries = json.load(f)
    return {e["filename"]: [r["shape_attributes"]
                            for r in e["regions"].values()]
            for e in entries.values()}


############################################################
#  Balloon dataset (real data)
############################################################

@pytest.mark.parametrize("subset", ["train", "val"])
def test_balloon_dataset_matches_the_json(balloon_path, subset):
    regions = via_regions(balloon_path / subset / "via_region_data.json")
    dataset = balloon.load_subset(str(balloon_path), subset)
    assert dataset.class_names == ["BG", "balloon"]
    assert dataset.num_images == len(regions)
    loaded = {os.path.basename(dataset.image_reference(i)):
              len(dataset.image_info[i]["polygons"])
              for i in dataset.image_ids}
    assert loaded == {name: len(shapes) for name, shapes in regions.items()}


def test_balloon_mask_is_the_filled_polygon(balloon_path):
    regions = via_regions(balloon_path / "val" / "via_region_data.json")
    dataset = balloon.load_subset(str(balloon_path), "val")
    image_id = min(dataset.image_ids,
                   key=lambda i: len(dataset.image_info[i]["polygons"]))
    info = dataset.image_info[image_id]
    masks, class_ids = dataset.load_mask(image_id)
    shapes = regions[os.path.basename(info["path"])]
    height, width = skimage.io.imread(info["path"]).shape[:2]
    assert masks.shape == (height, width, len(shapes))
    assert masks.dtype == bool
    np.testing.assert_array_equal(class_ids, np.ones(len(shapes)))
    for k, shape in enumerate(shapes):
        expected = np.zeros((height, width), bool)
        rows, cols = skimage.draw.polygon(shape["all_points_y"],
                                          shape["all_points_x"],
                                          (height, width))
        expected[rows, cols] = True
        np.testing.assert_array_equal(masks[..., k], expected)


def test_balloon_rejects_an_unknown_subset(tmp_path):
    with pytest.raises(ValueError, match="'test'"):
        balloon.BalloonDataset().load_balloon(str(tmp_path), "test")


############################################################
#  Color splash
############################################################

def assert_is_splash(splash, image, mask):
    """Colors kept where mask is set; elsewhere the luminance (skimage's
    rgb2gray weights) in all three channels."""
    assert splash.shape == image.shape and splash.dtype == np.uint8
    np.testing.assert_array_equal(splash[mask], image[mask])
    gray = skimage.color.rgb2gray(image) * 255
    for channel in range(3):
        difference = splash[..., channel][~mask] - gray[~mask]
        # Up to one level off: rounding to uint8, float32 vs float64.
        assert np.all(np.abs(difference) < 1.01)


def test_color_splash_keeps_color_inside_masks_only():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    masks = np.zeros((20, 30, 2), bool)
    masks[2:8, 3:9, 0] = True
    masks[5:15, 20:28, 1] = True
    assert_is_splash(balloon.color_splash(image, masks), image,
                     masks.any(-1))
    # No instance: all gray.
    assert_is_splash(balloon.color_splash(image, masks[..., :0]), image,
                     np.zeros((20, 30), bool))


@pytest.fixture(scope="module")
def balloon_run(tmp_path_factory):
    """The sample's command line trains a tiny model for 2 steps; then a
    tiny inference model loads its checkpoint."""
    root = balloon_root()
    logs = str(tmp_path_factory.mktemp("balloon_logs"))
    status, _ = quiet(balloon.main, ["train", "--dataset", str(root),
                                     "--weights", "none", "--tiny",
                                     "--epochs", "1", "--logs", logs])
    assert status == 0
    config = balloon.make_config(inference=True, tiny=True)
    model = modellib.MaskRCNN("inference", config, logs)
    checkpoint = model.find_last()
    model.load_weights(checkpoint, by_name=True)
    # Two random steps learn nothing: make the classifier call every ROI a
    # balloon, with zero box deltas (proposals are anchors, detections are
    # proposals), so that the splash has instances to keep in color.
    layer = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = layer.get_weights()
    bias[:] = [0.0, 20.0]
    # Zero kernel: logits = bias, whatever the untrained features are.
    layer.set_weights([np.zeros_like(kernel), bias])
    for layer in (model.keras_model.get_layer("rpn_model")
                  .get_layer("rpn_bbox_pred"),
                  model.keras_model.get_layer("mrcnn_bbox_fc")):
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    return {"root": root, "logs": logs, "checkpoint": checkpoint,
            "model": model}


def test_balloon_command_line_training_writes_a_checkpoint(balloon_run):
    checkpoint = balloon_run["checkpoint"]
    assert os.path.basename(checkpoint) == \
        "mask_rcnn_balloon_0001.weights.h5"
    assert os.path.dirname(os.path.dirname(checkpoint)) == balloon_run["logs"]


def test_splash_image_writes_the_splash_of_the_detections(balloon_run,
                                                          tmp_path):
    model = balloon_run["model"]
    image_path = str(balloon_run["root"] / "val"
                     / "5555705118_3390d70abe_b.jpg")
    written, _ = quiet(balloon.detect_and_color_splash, model,
                       image_path=image_path, out_dir=str(tmp_path))
    assert os.path.dirname(written) == str(tmp_path)
    assert os.path.basename(written).startswith(
        "splash_5555705118_3390d70abe_b_")
    splash = skimage.io.imread(written)
    image = skimage.io.imread(image_path)
    masks = model.detect([image])[0]["masks"]
    assert masks.shape[-1] > 0
    assert_is_splash(splash, image, masks.any(-1))


def test_splash_of_a_missing_image_names_it(balloon_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.jpg"):
        balloon.detect_and_color_splash(balloon_run["model"],
                                        image_path=str(tmp_path
                                                       / "nothing.jpg"))


def write_test_video(path, frames, height, width):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 5,
                             (width, height))
    assert writer.isOpened()
    rng = np.random.default_rng(1)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (height, width, 3))
                     .astype(np.uint8))
    writer.release()


def read_video_shapes(path):
    capture = cv2.VideoCapture(path)
    shapes = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        shapes.append(frame.shape)
    capture.release()
    return shapes


def test_splash_video_writes_every_frame(balloon_run, tmp_path):
    video = str(tmp_path / "clip.avi")
    write_test_video(video, frames=3, height=48, width=64)
    written, printed = quiet(balloon.detect_and_color_splash,
                             balloon_run["model"], video_path=video,
                             out_dir=str(tmp_path / "out"))
    assert written.endswith(".avi")
    assert read_video_shapes(written) == [(48, 64, 3)] * 3
    assert "Saved 3 frames" in printed


def test_splash_video_without_backend_is_skipped_with_a_message(
        monkeypatch, tmp_path):
    monkeypatch.setattr(balloon, "video_backend", lambda: None)
    written, printed = quiet(balloon.detect_and_color_splash, object(),
                             video_path=str(tmp_path / "clip.mp4"),
                             out_dir=str(tmp_path))
    assert written is None
    assert "no video backend" in printed and "clip.mp4" in printed
    assert not os.listdir(str(tmp_path))


def test_balloon_command_line_needs_an_image_or_video_to_splash(capsys):
    with pytest.raises(SystemExit) as exit_info:
        balloon.main(["splash", "--weights", "last"])
    assert exit_info.value.code == 2
    assert "--image or --video" in capsys.readouterr().err


############################################################
#  Command-line plumbing shared with mrcnn.cli.commands
############################################################

def test_sample_command_lines_keep_matterports_usage():
    args = balloon.build_parser().parse_args(
        ["train", "--dataset=/data/balloon", "--weights=coco"])
    assert (args.command, args.dataset, args.weights) == \
        ("train", "/data/balloon", "coco")
    assert args.logs == balloon.DEFAULT_LOGS_DIR
    assert args.steps is None and not args.tiny
    args = balloon.build_parser().parse_args(
        ["splash", "--weights=last", "--image=photo.jpg", "--steps=3",
         "--tiny"])
    assert (args.weights, args.image, args.steps, args.tiny) == \
        ("last", "photo.jpg", 3, True)
    args = coco.build_parser().parse_args(
        ["evaluate", "--dataset=/data/coco", "--model=imagenet",
         "--logs=/tmp/logs"])
    assert (args.command, args.dataset, args.model, args.logs) == \
        ("evaluate", "/data/coco", "imagenet", "/tmp/logs")


class StubModel:
    """Stands in for MaskRCNN in a sample's main: records how it was built
    and what it loaded; detects nothing."""

    def __init__(self, mode, config, model_dir):
        self.mode, self.config, self.model_dir = mode, config, model_dir
        self.loads = []

    def find_last(self):
        return os.path.join(self.model_dir, "last.weights.h5")

    def load_weights(self, path, by_name=False, exclude=None):
        self.loads.append((path, by_name, exclude))


@pytest.fixture
def stub_models(monkeypatch):
    """The StubModels the samples build; COCO weights 'downloaded' to a
    list instead of the network."""
    made = []
    monkeypatch.setattr(modellib, "MaskRCNN", lambda **kwargs: made.append(
        StubModel(**kwargs)) or made[-1])
    from mrcnn import utils
    downloads = []
    monkeypatch.setattr(utils, "download_trained_weights", downloads.append)
    return {"models": made, "downloads": downloads}


def test_balloon_loads_coco_weights_without_their_heads(
        stub_models, tmp_path, capsys):
    status = balloon.main(["splash", "--weights=coco", "--tiny",
                           "--image", str(tmp_path / "missing.jpg"),
                           "--logs", str(tmp_path)])
    [model] = stub_models["models"]
    assert model.mode == "inference" and model.config.BACKBONE == "resnet18"
    assert stub_models["downloads"] == [balloon.COCO_WEIGHTS_PATH]
    assert model.loads == [(balloon.COCO_WEIGHTS_PATH, True, cli.HEAD_LAYERS)]
    # The image error comes after the weights, reported without traceback.
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("balloon.py splash: error: image file not found")


def test_coco_sample_loads_every_layer_of_coco_weights(
        stub_models, tmp_path, capsys):
    status = coco.main(["evaluate", "--dataset", str(tmp_path),
                        "--model=coco", "--steps=3", "--logs", str(tmp_path)])
    [model] = stub_models["models"]
    assert model.mode == "inference" and model.model_dir == str(tmp_path)
    assert model.config.STEPS_PER_EPOCH == 3
    assert model.loads == [(coco.COCO_MODEL_PATH, True, None)]
    assert status == 2  # no annotations in tmp_path
    assert capsys.readouterr().err.startswith("coco.py evaluate: error: ")


def test_sample_with_a_missing_weights_file_names_it(
        stub_models, tmp_path, capsys):
    missing = str(tmp_path / "missing.h5")
    status = balloon.main(["train", "--dataset", str(tmp_path), "--tiny",
                           "--weights", missing, "--logs", str(tmp_path)])
    assert status == 2
    assert capsys.readouterr().err.strip() == \
        "balloon.py train: error: weights file not found: " + missing
    [model] = stub_models["models"]
    assert model.mode == "training" and model.loads == []


############################################################
#  COCO sample
############################################################

# The 80 COCO category ids, in the order of the class names.
COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in
                     (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def coco_categories():
    return [{"id": category_id, "name": name, "supercategory": "thing"}
            for category_id, name in zip(COCO_CATEGORY_IDS,
                                         cli.COCO_CLASS_NAMES[1:])]


def square_annotation(annotation_id, image_id, category_id, top, left, size):
    polygon = [left, top, left + size, top, left + size, top + size,
               left, top + size]
    return {"id": annotation_id, "image_id": image_id,
            "category_id": category_id, "iscrowd": 0,
            "segmentation": [polygon], "area": float(size * size),
            "bbox": [left, top, size, size]}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    """matterport's layout with a 3-image minival2014 subset: all 80
    categories, squares of persons (1) and dogs (18)."""
    root = tmp_path_factory.mktemp("coco")
    os.makedirs(str(root / "annotations"))
    os.makedirs(str(root / "val2014"))
    rng = np.random.default_rng(5)
    images, annotations = [], []
    layout = {101: [(1, 4, 6, 20), (18, 30, 40, 18)],
              205: [(18, 10, 10, 24)],
              307: [(1, 20, 30, 16), (1, 40, 8, 14)]}
    for image_id, squares in layout.items():
        name = "COCO_val2014_{:012d}.png".format(image_id)
        image = np.zeros((64, 80, 3), np.uint8) + rng.integers(0, 60, 3)
        for category_id, top, left, size in squares:
            image[top:top + size, left:left + size] = \
                (200, 40, 40) if category_id == 1 else (40, 200, 40)
            annotations.append(square_annotation(
                len(annotations) + 1, image_id, category_id, top, left, size))
        skimage.io.imsave(str(root / "val2014" / name), image.astype(np.uint8),
                          check_contrast=False)
        images.append({"id": image_id, "file_name": name, "height": 64,
                       "width": 80})
    with open(str(root / "annotations" / "instances_minival2014.json"),
              "w") as f:
        json.dump({"images": images, "annotations": annotations,
                   "categories": coco_categories()}, f)
    return root


def load_minival(root):
    dataset = coco.CocoDataset()
    coco_gt = dataset.load_coco(str(root), "minival", year="2014",
                                return_coco=True)
    dataset.prepare()
    return dataset, coco_gt


def test_coco_sample_loads_matterports_layout(coco_root):
    dataset, coco_gt = load_minival(coco_root)
    assert dataset.num_classes == coco.CocoConfig.NUM_CLASSES == 81
    assert dataset.num_images == 3
    assert sorted(coco_gt.getImgIds()) == [101, 205, 307]
    image_id = dataset.image_from_source_map["coco.101"]
    masks, class_ids = dataset.load_mask(image_id)
    assert masks.shape == (64, 80, 2)
    names = [dataset.class_names[i] for i in class_ids]
    assert names == ["person", "dog"]


class GroundTruthModel:
    """Stands in for MaskRCNN: 'detects' each image's ground truth, found
    by its pixels, so COCO evaluation must score it perfect."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.detected = []  # internal ids of the images seen, in order

    def detect(self, images, verbose=0):
        results = []
        for image in images:
            image_id = next(i for i in self.dataset.image_ids
                            if np.array_equal(self.dataset.load_image(i),
                                              image))
            self.detected.append(int(image_id))
            masks, class_ids = self.dataset.load_mask(image_id)
            boxes = np.array([[*np.argwhere(m).min(0), *(np.argwhere(m)
                                                        .max(0) + 1)]
                              for m in np.moveaxis(masks, -1, 0)])
            results.append({"rois": boxes, "class_ids": class_ids,
                            "scores": np.linspace(1.0, 0.9, len(class_ids)),
                            "masks": masks})
        return results


def test_evaluate_coco_scores_ground_truth_as_perfect(coco_root):
    dataset, coco_gt = load_minival(coco_root)
    metrics, printed = quiet(coco.evaluate_coco, GroundTruthModel(dataset),
                             dataset, coco_gt, "both")
    for eval_type in ("bbox", "segm"):
        assert metrics[eval_type]["AP"] == pytest.approx(1.0)
        assert metrics[eval_type]["per_class"]["person"] == pytest.approx(1.0)
        assert metrics[eval_type]["per_class"]["dog"] == pytest.approx(1.0)
    assert "Prediction time" in printed


def test_evaluate_coco_limit_scores_only_the_first_images(coco_root):
    dataset, coco_gt = load_minival(coco_root)
    model = GroundTruthModel(dataset)
    metrics, _ = quiet(coco.evaluate_coco, model, dataset, coco_gt, "bbox",
                       limit=1)
    assert model.detected == [0]
    # Scored on the first image only: had the other images' ground truth
    # counted, their undetected instances would pull AP below 1.
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["per_class"]["dog"] == pytest.approx(1.0)


def test_coco_command_line_evaluates_a_tiny_model(coco_root, tmp_path):
    status, printed = quiet(coco.main, [
        "evaluate", "--dataset", str(coco_root), "--model", "none",
        "--tiny", "--limit", "2", "--eval-type", "both",
        "--logs", str(tmp_path)])
    assert status == 0
    assert "Running COCO evaluation on 2 images." in printed
    assert printed.count("Average Precision  (AP) @[ IoU=0.50      |") == 2


def test_coco_download_offline_fails_naming_url_and_folder(tmp_path,
                                                          monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dataset = coco.CocoDataset()
    with pytest.raises(coco.CocoDownloadError) as error:
        quiet(dataset.load_coco, str(tmp_path), "minival", year="2014",
              auto_download=True)
    message = str(error.value)
    assert "https://images.cocodataset.org/zips/val2014.zip" in message
    assert str(tmp_path) in message
    assert os.listdir(str(tmp_path)) == []  # no partial download left


def test_coco_file_locations_follow_matterports_layout(tmp_path):
    where = coco.coco_file_locations(str(tmp_path), "val", "2017")
    assert where["image_dir"] == str(tmp_path / "val2017")
    assert where["image_url"] == \
        "https://images.cocodataset.org/zips/val2017.zip"
    assert where["annotation_file"] == \
        str(tmp_path / "annotations" / "instances_val2017.json")
    assert where["annotation_url"].endswith("annotations_trainval2017.zip")
    minival = coco.coco_file_locations(str(tmp_path), "minival", "2014")
    assert minival["image_dir"] == str(tmp_path / "val2014")
    with pytest.raises(ValueError, match="2014"):
        coco.coco_file_locations(str(tmp_path), "minival", "2017")
