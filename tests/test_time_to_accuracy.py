"""benchmarks/time_to_accuracy.py end to end in its --tiny mode, on a small
masks folder made here, and its evaluation against an independent AP.

The torchvision side runs only where benchmarks/.torch-venv exists (CI has
none): elsewhere the run is --only mrcnn."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "time_to_accuracy.py")
TORCH_PYTHON = os.path.join(ROOT, "benchmarks", ".torch-venv", "bin",
                            "python")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def write_masks_folder(root, count, seed):
    """`count` 48x64 images of 1-3 bright discs, one mask PNG per disc, in
    the masks-folder (nuclei) layout; returns root."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :64]
    for i in range(count):
        image_id = "img{:02d}".format(i)
        os.makedirs(os.path.join(root, image_id, "images"))
        os.makedirs(os.path.join(root, image_id, "masks"))
        image = np.full((48, 64, 3), 30, np.uint8)
        for k in range(rng.integers(1, 4)):
            cy, cx, r = rng.integers(10, 38), rng.integers(10, 54), 6
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            image[disc] = 220
            Image.fromarray(disc.astype(np.uint8) * 255).save(os.path.join(
                root, image_id, "masks", "m{}.png".format(k)))
        Image.fromarray(image).save(os.path.join(
            root, image_id, "images", image_id + ".png"))
    return root


def numpy_ap(gt_masks, detections, iou_threshold):
    """COCO's AP at one IoU for one class, area "all", 100 detections an
    image, written from the COCO definition: per image, detections by
    score take the best unmatched ground truth at IoU >= threshold; then
    precision over all detections by score, made non-increasing, read at
    the recalls 0, 0.01, ..., 1 (0 past the last recall)."""
    scored, total = [], 0
    for gts, det in zip(gt_masks, detections):
        total += gts.shape[-1]
        order = np.argsort(-det["scores"], kind="mergesort")[:100]
        taken = set()
        for d in order:
            mask = det["masks"][..., d]
            ious = [np.logical_and(mask, gts[..., g]).sum()
                    / max(1, np.logical_or(mask, gts[..., g]).sum())
                    for g in range(gts.shape[-1])]
            best, best_iou = None, min(iou_threshold, 1 - 1e-10)
            for g, iou in enumerate(ious):
                if g not in taken and iou >= best_iou:
                    best, best_iou = g, iou
            if best is not None:
                taken.add(best)
            scored.append((det["scores"][d], best is not None))
    scored.sort(key=lambda s: -s[0])
    hits = np.cumsum([s[1] for s in scored])
    recall = hits / total
    precision = hits / np.arange(1, len(scored) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean([precision[p] if p < len(precision) else 0
                          for p in points]))


def test_the_benchmarks_evaluation_is_cocos_ap(tmp_path):
    """Validation.score on made-up detections (ground truth shifted by 0-4
    pixels, so their IoUs straddle 0.5, plus false positives) equals the
    AP written out above, at 0.5 and averaged over 0.5:0.95."""
    import time_to_accuracy as tta
    from mrcnn.utils import extract_bboxes
    folder = write_masks_folder(str(tmp_path / "data"), 6, seed=3)
    _, val = tta.load_data(folder, folder)
    validation = tta.Validation(val)
    rng = np.random.default_rng(0)
    gt_masks, detections = [], []
    for image_id in val.image_ids:
        masks, _ = val.load_mask(image_id)
        shifted = [np.roll(masks[..., i], rng.integers(0, 5), axis=1)
                   for i in range(masks.shape[-1])]
        noise = [rng.random(masks.shape[:2]) < 0.05 for _ in range(2)]
        found = np.stack(shifted + noise, axis=-1)
        gt_masks.append(masks)
        detections.append({
            "masks": found, "scores": rng.random(found.shape[-1]),
            "class_ids": np.ones(found.shape[-1], np.int32),
            "rois": extract_bboxes(found)})
    score = validation.score(detections)
    ap50 = numpy_ap(gt_masks, detections, 0.5)
    ap = np.mean([numpy_ap(gt_masks, detections, t)
                  for t in np.linspace(0.5, 0.95, 10)])
    assert 0 < ap50 < 1
    assert score["mask_ap50"] == pytest.approx(ap50, abs=1e-4)
    assert score["mask_ap"] == pytest.approx(ap, abs=1e-4)


def test_tiny_run_prints_one_json_line_with_both_curves(tmp_path):
    """--tiny end to end on a masks folder: one JSON line on stdout with
    each side's curve (minutes rising to the budget, APs in [0, 1]), its
    finals as its curve's last point, the minutes to the other's final AP,
    the CPU flags, threads and date; and the PNG."""
    folder = write_masks_folder(str(tmp_path / "data"), 5, seed=1)
    command = [sys.executable, SCRIPT, "--tiny", "--train", folder,
               "--out", str(tmp_path / "out")]
    sides = ["mrcnn", "torchvision"]
    if not os.path.exists(TORCH_PYTHON):
        command += ["--only", "mrcnn"]  # no torch virtualenv (CI)
        sides = ["mrcnn"]
    env = dict(os.environ, PYTHONPATH=ROOT, MRCNN_MALLOC_TUNING="0")
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout[-2000:]
    report = json.loads(lines[0])
    assert sorted(report["sides"]) == sorted(sides)
    assert report["threads"] == 2 and report["date"]
    assert "avx2" in report["cpu"]
    assert report["train_images"] == 4 and report["val_images"] == 1
    for side, result in report["sides"].items():
        curve = result["curve"]
        minutes = [p["minutes"] for p in curve]
        assert minutes == sorted(minutes) and minutes[-1] >= 0.2
        for point in curve:
            assert 0 <= point["mask_ap"] <= point["mask_ap50"] <= 1
        assert result["final_mask_ap"] == curve[-1]["mask_ap"]
        assert result["final_mask_ap50"] == curve[-1]["mask_ap50"]
        for other in set(sides) - {side}:
            assert "minutes_to_{}_final_mask_ap".format(other) in result
    assert os.path.getsize(report["png"]) > 0
    if len(sides) == 1:
        pytest.skip("torchvision side not run: no benchmarks/.torch-venv "
                    "(the mrcnn side passed)")


def race_line(date, sides, **settings):
    """A time_to_accuracy JSON line with the given sides' curves, each a
    list of (minutes, mask AP) points."""
    report = {"benchmark": "time_to_accuracy", "date": date, "size": 320,
              "backbone": "resnet18", "train_dir": "/data", "val_dir": None,
              "split": "split_dataset", "train_images": 112,
              "val_images": 29, "budget_minutes": 35.0, "threads": 2,
              "sides": {}}
    report.update(settings)
    for name, points in sides.items():
        curve = [{"minutes": m, "steps": 10 * (k + 1), "loss": 1.0,
                  "mask_ap": ap, "mask_ap50": min(1.0, 2 * ap)}
                 for k, (m, ap) in enumerate(points)]
        report["sides"][name] = {"curve": curve, "recipe": {"name": name}}
    return report


def test_against_puts_an_earlier_runs_sides_beside_this_ones(tmp_path):
    """--against: the earlier mrcnn is renamed with its date, torchvision
    keeps its name, and the minutes to each other's final AP are read off
    the curves by hand."""
    from race_report import summarize, with_earlier_sides
    earlier = race_line("2026-12-07 17:58", {
        "mrcnn": [(10, 0.05), (20, 0.15), (35, 0.20)],
        "torchvision": [(10, 0.02), (20, 0.06), (35, 0.10)]})
    path = tmp_path / "earlier.json"
    path.write_text("Epoch 1 noise\n" + json.dumps(earlier) + "\n")
    now = race_line("2026-12-07 19:40", {
        "mrcnn": [(10, 0.12), (20, 0.25), (35, 0.30)]})
    now["sides"] = summarize({name: (side["curve"], side["recipe"])
                              for name, side in now["sides"].items()})
    merged = with_earlier_sides(now, [str(path)])["sides"]
    assert sorted(merged) == ["mrcnn", "mrcnn @ 2026-12-07 17:58",
                              "torchvision"]
    assert merged["torchvision"]["from"]["file"] == str(path)
    assert "from" not in merged["mrcnn"]
    assert merged["mrcnn"]["minutes_to_torchvision_final_mask_ap"] == 10
    assert merged["mrcnn @ 2026-12-07 17:58"][
        "minutes_to_torchvision_final_mask_ap"] == 20
    assert merged["torchvision"][
        "minutes_to_mrcnn_final_mask_ap"] is None
    assert merged["mrcnn"][
        "minutes_to_mrcnn @ 2026-12-07 17:58_final_mask_ap"] == 20


def test_against_refuses_a_run_that_trained_otherwise(tmp_path):
    from race_report import with_earlier_sides
    earlier = race_line("2026-12-07 17:58", {"torchvision": [(35, 0.1)]},
                          size=512, val_images=28)
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps(earlier))
    now = race_line("2026-12-07 19:40", {"mrcnn": [(35, 0.3)]})
    with pytest.raises(SystemExit) as stop:
        with_earlier_sides(now, [str(path)])
    assert "size: 320 here, 512" in str(stop.value)
    assert "val_images: 29 here, 28" in str(stop.value)


def test_reports_written_earlier_merge_into_one_line_and_plot(tmp_path,
                                                              capsys):
    import race_report
    earlier = race_line("2026-12-07 17:58", {
        "mrcnn": [(10, 0.05), (35, 0.20)],
        "torchvision": [(10, 0.02), (35, 0.10)]})
    now = race_line("2026-12-07 19:40", {"mrcnn": [(10, 0.12), (35, 0.3)]})
    for name, report in (("earlier", earlier), ("now", now)):
        (tmp_path / (name + ".json")).write_text(json.dumps(report))
    race_report.main([str(tmp_path / "now.json"), "--against",
                      str(tmp_path / "earlier.json"), "--out",
                      str(tmp_path / "out")])
    merged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(merged["sides"]) == 3
    assert merged["sides"]["mrcnn"]["minutes_to_torchvision_final_mask_ap"] \
        == 10
    assert os.path.getsize(merged["png"]) > 0
