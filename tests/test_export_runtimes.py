"""benchmarks/export_runtimes.py end to end in its --tiny mode: every
format exported, run in a process without TensorFlow or mrcnn, and held
to detect() by mrcnn.inference.agreement."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert.interpreter")
pytest.importorskip("tf2onnx")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "export_runtimes.py")


@pytest.fixture(scope="module")
def report():
    done = subprocess.run(
        [sys.executable, SCRIPT, "--tiny", "--rounds", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_one_line_with_every_format(report):
    assert report["benchmark"] == "export_runtimes" and report["tiny"]
    for name in ("onnx", "tflite_float32", "tflite_float16", "tflite_int8"):
        entry = report[name]
        assert entry["file_mb"] > 0 and entry["ms"] > 0
        assert entry["imports_tf_or_mrcnn"] == []
        assert entry["detections"] > 0


@pytest.mark.parametrize("name", ["onnx", "tflite_float32"])
def test_float32_exports_give_detects_detections(report, name):
    entry = report[name]
    assert entry["within_rules"], entry
    assert entry["matched"] == entry["detections"] == \
        entry["detections_actual"]
    assert entry["max_score_diff"] <= 1e-3 and entry["max_box_diff_px"] <= 1
