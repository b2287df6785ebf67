"""samples/shapes/train_shapes.py (make demo) end to end, at toy sizes:
its two training phases, the checkpoints they leave and its JSON line."""

import contextlib
import io
import json
import os

import matplotlib.pyplot as plt
import numpy as np

from mrcnn import model as modellib
from samples.shapes import train_shapes


def run_demo(out_dir):
    """Runs the demo with 2 epochs of 2 steps (the second one fine-tunes
    with frozen batch norm); returns its JSON line as a dict."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = train_shapes.main([
            "--out", str(out_dir), "--epochs", "2", "--finetune-epochs", "1",
            "--steps", "2", "--train-images", "12", "--val-images", "6"])
    assert status == 0
    lines = [line for line in printed.getvalue().splitlines()
             if line.startswith("{")]
    return json.loads(lines[-1])


def layer_weights(model, checkpoint, name):
    model.load_weights(checkpoint, by_name=True)
    return [np.array(w) for w in model.keras_model.get_layer(name).weights]


def test_demo_trains_both_phases_and_reports(tmp_path):
    report = run_demo(tmp_path)
    assert set(report) >= {"mAP50", "target_mAP50", "target_met",
                           "train_minutes", "checkpoint", "png", "steps",
                           "seconds_per_step", "user_cpu_s", "system_cpu_s",
                           "threads", "precision", "cpu"}
    assert 0.0 <= report["mAP50"] <= 1.0
    assert report["target_met"] == (report["mAP50"] >= 0.9)
    assert report["steps"] == 4 and report["seconds_per_step"] > 0
    assert report["user_cpu_s"] > 0 and report["threads"] >= 1
    assert report["precision"] in ("float32", "mixed_bfloat16")
    assert "avx2" in report["cpu"]
    # Six rows (test images) of two panels: ground truth, prediction.
    height, width = plt.imread(report["png"]).shape[:2]
    assert height == 3 * width
    run_dir = os.path.dirname(report["checkpoint"])
    first, second = [os.path.join(run_dir, "mask_rcnn_shapes_{:04d}.weights.h5"
                                  .format(epoch)) for epoch in (1, 2)]
    # The fine-tuning model went on in the same run, from epoch 1.
    assert report["checkpoint"] == second and os.path.exists(first)

    model = modellib.MaskRCNN("inference", train_shapes.InferenceConfig(),
                              str(tmp_path / "inspect"))
    # Epoch 2 trained with frozen batch norm: scale and offset learn, the
    # moving statistics stay those of epoch 1. The convolutions learn.
    gamma1, beta1, mean1, var1 = layer_weights(model, first, "bn_conv1")
    gamma2, beta2, mean2, var2 = layer_weights(model, second, "bn_conv1")
    np.testing.assert_array_equal(mean1, mean2)
    np.testing.assert_array_equal(var1, var2)
    assert not np.array_equal(gamma1, gamma2)
    kernel1 = layer_weights(model, first, "conv1")[0]
    kernel2 = layer_weights(model, second, "conv1")[0]
    assert not np.array_equal(kernel1, kernel2)
