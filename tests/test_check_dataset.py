"""check_dataset / check_annotation_file / check_path find each broken case
and name the file."""
import json
import os
import shutil

import numpy as np
import pytest
import skimage.io

from mrcnn import utils
from mrcnn.datasets import (Problem, check_annotation_file, check_dataset,
                            check_path, detect_format, has_errors)


def save_image(path, height=12, width=12, seed=0):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    image = np.random.RandomState(seed).randint(0, 255, (height, width, 3))
    skimage.io.imsave(str(path), image.astype(np.uint8), check_contrast=False)
    return str(path)


def box(height, width, *slices):
    mask = np.zeros((height, width, len(slices)), bool)
    for k, (rows, cols) in enumerate(slices):
        mask[rows, cols, k] = True
    return mask


class ListedDataset(utils.Dataset):
    """Each image carries the masks and class ids load_mask returns."""

    def add(self, name, path, mask, class_ids, **info):
        self.add_image("t", image_id=name, path=path, mask=mask,
                       class_ids=np.array(class_ids, np.int32), **info)

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        return info["mask"], info["class_ids"]


def problems_by_file(problems):
    found = {}
    for problem in problems:
        found.setdefault(os.path.basename(problem.file), []).append(problem)
    return found


def one(problems, severity, text):
    """The single problem of that severity whose message contains text."""
    matches = [p for p in problems if p.severity == severity
               and text in p.message]
    assert len(matches) == 1, problems
    return matches[0]


def test_check_dataset_finds_each_broken_image(tmp_path):
    good = save_image(tmp_path / "good.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png")
    shutil.copy(good, tmp_path / "copy.png")
    names = ["range", "zero", "empty", "size", "count", "none", "crowd",
             "info"]
    paths = {n: save_image(tmp_path / (n + ".png"), seed=i + 1)
             for i, n in enumerate(names)}
    instance = box(12, 12, (slice(2, 5), slice(2, 5)))
    dataset = ListedDataset()
    dataset.add_class("t", 1, "a")
    dataset.add_class("t", 2, "b")
    dataset.add("good", good, instance, [1])
    dataset.add("missing", str(tmp_path / "missing.png"), instance, [1])
    dataset.add("garbage", str(garbage), instance, [1])
    dataset.add("copy", str(tmp_path / "copy.png"), instance, [2])
    dataset.add("range", paths["range"], instance, [3])
    dataset.add("zero", paths["zero"], instance, [0])
    dataset.add("empty", paths["empty"], np.zeros((12, 12, 1), bool), [1])
    dataset.add("size", paths["size"], box(10, 12, (slice(0, 2),) * 2), [1])
    dataset.add("count", paths["count"], instance, [1, 2])
    dataset.add("none", paths["none"], np.zeros((12, 12, 0), bool), [])
    dataset.add("crowd", paths["crowd"], instance, [-2])  # fine: crowd
    dataset.add("info", paths["info"], instance, [1], height=10, width=12)
    dataset.add("again", good, instance, [1])  # same file listed twice
    dataset.prepare()

    found = problems_by_file(check_dataset(dataset))
    assert set(found) == {"missing.png", "garbage.png", "copy.png",
                          "range.png", "zero.png", "empty.png", "size.png",
                          "count.png", "none.png", "info.png", "good.png"}
    one(found["missing.png"], "error", "not found")
    one(found["garbage.png"], "error", "cannot read image")
    one(found["copy.png"], "warning", "identical to image 0")
    one(found["range.png"], "error", "class id 3 is out of range 1..2")
    one(found["zero.png"], "error", "class id 0 is out of range")
    # Dropped in training, with a warning: reported, counted by cause.
    empty = one(found["empty.png"], "warning",
                "instance 0 (a): empty mask (dropped in training)")
    assert (empty.cause, empty.count) == ("empty_in_load_mask", 1)
    one(found["size.png"], "error", "masks are 10x12 but the image is 12x12")
    one(found["count.png"], "error", "1 masks but 2 class ids")
    one(found["none.png"], "warning", "no instances")
    one(found["info.png"], "error", "image_info says 10x12")
    one(found["good.png"], "error", "listed twice (images 0 and 12)")
    assert all(len(v) == 1 for v in found.values())
    assert has_errors(sum(found.values(), []))


def test_a_clean_dataset_has_no_problems_and_str_names_file(tmp_path):
    dataset = ListedDataset()
    dataset.add_class("t", 1, "a")
    path = save_image(tmp_path / "ok.png")
    dataset.add("ok", path, box(12, 12, (slice(0, 3), slice(0, 3))), [1])
    dataset.prepare()
    assert check_dataset(dataset) == []
    problem = Problem("warning", path, "no instances")
    assert str(problem) == "warning: {}: no instances".format(path)
    assert not has_errors([problem])
    with pytest.raises(ValueError, match="severity"):
        Problem("fatal", path, "x")


def test_unprepared_dataset_is_an_error():
    problems = check_dataset(ListedDataset())
    assert has_errors(problems) and "prepare()" in problems[0].message


# --- annotation files -------------------------------------------------------

def via_region(shape, **attributes):
    return {"shape_attributes": shape, "region_attributes": attributes}


def polygon(xs, ys):
    return {"name": "polygon", "all_points_x": xs, "all_points_y": ys}


def write_json(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_broken_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n"a": [1,\n}')
    problems = check_annotation_file(path)
    assert len(problems) == 1 and problems[0].file == str(path)
    assert problems[0].is_error and "line 3" in problems[0].message


def test_via_annotation_problems(tmp_path):
    image = save_image(tmp_path / "a.png", height=10, width=20)
    regions = [
        via_region(polygon([0, 20, 20, 0], [0, 0, 10, 10])),   # on border
        via_region(polygon([1, 25, 4], [1, 2, 3])),            # beyond
        via_region(polygon([-2, 5, 4], [1, 2, 3])),            # negative
        via_region(polygon([1, float("nan"), 4], [1, 2, 3])),  # NaN
        via_region({"name": "blob"}),
        via_region({"name": "point", "cx": 1, "cy": 1}),
        via_region(polygon([1, 5, 4], [1, 2, 3]), kind="unicorn"),
    ]
    data = {"a.png1": {"filename": "a.png", "regions": regions},
            "lost.png1": {"filename": "lost.png", "regions": []}}
    path = write_json(tmp_path / "via_region_data.json", data)
    problems = check_annotation_file(path, class_attribute="kind",
                                     class_names=["cat"],
                                     default_class="cat")
    found = problems_by_file(problems)
    assert set(found) == {"a.png", "lost.png"}
    assert found["a.png"][0].file == image
    one(found["lost.png"], "error", "image file not found")
    on_image = found["a.png"]
    one(on_image, "warning", "region 1: points beyond the 20x10 image")
    one(on_image, "warning", "region 2: negative coordinates")
    one(on_image, "error", "region 3: all_points_x contain NaN")
    one(on_image, "error", "region 4: unknown shape 'blob'")
    one(on_image, "warning", "region 5: point shape has no area")
    one(on_image, "warning", "region 6: unknown class 'unicorn'")
    assert len(on_image) == 6  # region 0 (points on the border) is fine
    assert all(p.message.startswith(path) for p in problems)


def coco_data(tmp_path):
    save_image(tmp_path / "a.png", height=10, width=20)
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 10,
                    "width": 20},
                   {"id": 2, "file_name": "gone.png", "height": 5,
                    "width": 5},
                   {"id": 3, "file_name": "a.png", "height": 11,
                    "width": 20}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1,
             "segmentation": [[1, 1, 5, 1, 5, 5]]},
            {"id": 2, "image_id": 1, "category_id": 9,
             "segmentation": [[1, 1, 5, 1, 5, 5]]},
            {"id": 3, "image_id": 42, "category_id": 1,
             "segmentation": [[1, 1, 5, 1, 5, 5]]},
            {"id": 4, "image_id": 1, "category_id": 1,
             "segmentation": [[1, 1, 5, 5]]},
            {"id": 5, "image_id": 1, "category_id": 1,
             "segmentation": {"counts": [0, 4], "size": [2, 2]}},
            {"id": 6, "image_id": 1, "category_id": 1,
             "segmentation": [[1, 1, 30, 1, 5, 5]]},
        ]}


def test_coco_annotation_problems(tmp_path):
    path = write_json(tmp_path / "coco.json", coco_data(tmp_path))
    problems = check_annotation_file(path, "coco", image_dir=tmp_path)
    found = problems_by_file(problems)
    one(found["coco.json"], "error", "annotation 3 refers to unknown image")
    one(found["gone.png"], "error", "image file not found")
    on_image = found["a.png"]
    one(on_image, "error", "json says 11x20")
    one(on_image, "error", "annotation 2: unknown category id 9")
    one(on_image, "warning", "annotation 4: polygon 0: fewer than 3 points")
    one(on_image, "error", "annotation 5: RLE size [2, 2] differs")
    one(on_image, "warning", "annotation 6: polygon 0: points beyond")
    assert len(problems) == 8  # + "no usable polygon" for annotation 4


def labelme(image_path, shapes, height=10, width=20):
    return {"shapes": shapes, "imagePath": image_path, "imageData": None,
            "imageHeight": height, "imageWidth": width}


def test_labelme_annotation_problems(tmp_path):
    save_image(tmp_path / "a.png", height=10, width=20)
    shapes = [{"label": "x", "points": [[1, 1], [30, 2], [4, 5]],
               "shape_type": "polygon"},
              {"label": "x", "points": [[1, None], [3, 2], [4, 5]],
               "shape_type": "polygon"},
              {"label": "y", "points": [[1, 1], [3, 3]],
               "shape_type": "line"}]
    good = write_json(tmp_path / "a.json", labelme("a.png", shapes,
                                                   height=9))
    problems = check_annotation_file(good, class_names=["x"])
    one(problems, "warning", "json says 9x20")
    one(problems, "warning", "shape 0: points beyond the 20x10 image")
    one(problems, "error", "shape 1: points contain NaN")
    one(problems, "warning", "shape 2: line has no area")
    one(problems, "warning", "shape 2: unknown class 'y'")
    assert len(problems) == 5
    assert {p.file for p in problems} == {str(tmp_path / "a.png")}
    lost = write_json(tmp_path / "b.json", labelme("lost.png", []))
    (problem,) = check_annotation_file(lost)
    assert problem.is_error and problem.file.endswith("lost.png")
    assert "no imageData" in problem.message


# --- whole paths ------------------------------------------------------------

def test_check_path_via_reports_a_missing_image_once(tmp_path):
    save_image(tmp_path / "a.png")
    data = {"a.png1": {"filename": "a.png", "regions": [
                via_region(polygon([1, 6, 6, 1], [1, 1, 6, 6]))]},
            "b.png1": {"filename": "b.png", "regions": []}}
    write_json(tmp_path / "via_region_data.json", data)
    assert detect_format(tmp_path) == "via"
    problems = check_path(tmp_path)
    assert len(problems) == 1 and has_errors(problems)
    assert problems[0].file == str(tmp_path / "b.png")


def test_check_path_masks_folder_size_mismatch(tmp_path):
    save_image(tmp_path / "s1" / "images" / "s1.png")
    mask = np.zeros((12, 13), np.uint8)
    mask[2:5, 2:5] = 255
    os.makedirs(tmp_path / "s1" / "masks")
    skimage.io.imsave(str(tmp_path / "s1" / "masks" / "m.png"), mask,
                      check_contrast=False)
    assert detect_format(tmp_path) == "masks"
    (problem,) = check_path(tmp_path)
    assert problem.is_error
    assert problem.file == str(tmp_path / "s1" / "images" / "s1.png")
    assert "m.png is 12x13" in problem.message


def test_check_path_labelme_and_coco(tmp_path):
    labelme_dir = tmp_path / "lm"
    save_image(labelme_dir / "a.png", height=10, width=20)
    write_json(labelme_dir / "a.json", labelme("a.png", [
        {"label": "x", "points": [[1, 1], [6, 1], [6, 6]],
         "shape_type": "polygon"}]))
    assert detect_format(labelme_dir) == "labelme"
    assert check_path(labelme_dir) == []

    coco_dir = tmp_path / "coco"
    os.makedirs(coco_dir)
    data = coco_data(coco_dir)
    data["images"] = data["images"][:1]
    data["annotations"] = data["annotations"][:1]
    path = write_json(coco_dir / "instances.json", data)
    assert detect_format(path) == "coco" == detect_format(coco_dir)
    assert check_path(path) == []
    data["images"].append({"id": 7, "file_name": "gone.png"})
    write_json(coco_dir / "instances.json", data)
    problems = check_path(coco_dir)
    assert [os.path.basename(p.file) for p in problems] == ["gone.png"]


def test_check_path_unknown_and_broken(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (problem,) = check_path(tmp_path)
    assert problem.is_error and "cannot tell the dataset format" in \
        problem.message
    with pytest.raises(ValueError, match="cannot tell"):
        detect_format(tmp_path)
    broken = tmp_path / "via_region_data.json"
    broken.write_text("{")
    (problem,) = check_path(broken)
    assert problem.is_error and "broken json" in problem.message


def test_check_path_balloon_val_is_clean(balloon_path):
    assert check_path(balloon_path, subset="val") == []
