"""ONNX and LiteRT exports of a tiny model against detect(), run by
onnxruntime and the ai-edge-litert interpreter, the README's deploy
examples run as written without TensorFlow or mrcnn."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from mrcnn import model as modellib
from mrcnn.inference import export, export_litert, export_onnx
from mrcnn.inference import export_portable
from tests.test_export import ExportConfig, shapes_images
from tests.tiny import like_a_trained_model

onnxruntime = pytest.importorskip("onnxruntime")
litert = pytest.importorskip("ai_edge_litert.interpreter")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASS_NAMES = ["BG", "square", "circle", "triangle"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model (random weights, like_a_trained_model) and its ONNX and
    float32 TFLite files."""
    keras.utils.set_random_seed(7)
    model = modellib.MaskRCNN("inference", ExportConfig(),
                              str(tmp_path_factory.mktemp("logs")))
    like_a_trained_model(model.keras_model)
    folder = tmp_path_factory.mktemp("exported")
    onnx_path = model.export(str(folder / "mask_rcnn.onnx"), format="onnx",
                             class_names=CLASS_NAMES)
    tflite_path = model.export(str(folder / "mask_rcnn.tflite"),
                               format="tflite", class_names=CLASS_NAMES)
    return model, onnx_path, tflite_path


def mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def assert_same_detections(expected, actual, score_atol=1e-3):
    """The export rules: class ids equal, scores within score_atol, boxes
    within 1 pixel, mask IoU >= 0.95 for every detection."""
    assert len(expected["class_ids"]) > 0  # not a vacuous comparison
    np.testing.assert_array_equal(actual["class_ids"], expected["class_ids"])
    np.testing.assert_allclose(actual["scores"], expected["scores"],
                               rtol=0, atol=score_atol)
    assert np.abs(actual["rois"] - expected["rois"]).max() <= 1
    assert actual["masks"].shape == expected["masks"].shape
    for i in range(expected["masks"].shape[-1]):
        assert mask_iou(expected["masks"][..., i],
                        actual["masks"][..., i]) >= 0.95


def onnx_outputs(session, images):
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"images": images})))


def test_onnx_matches_detect(exported):
    model, onnx_path, _ = exported
    session = onnxruntime.InferenceSession(
        onnx_path, providers=["CPUExecutionProvider"])
    images = shapes_images(2, seed=21)
    batch = export.results_from_serving(onnx_outputs(session,
                                                     np.stack(images)))
    # A size the graph resizes (48x80 -> 38x64) and unmolds back.
    resized = np.random.default_rng(3).integers(0, 256, (48, 80, 3))
    resized = resized.astype(np.uint8)
    single = export.results_from_serving(onnx_outputs(session,
                                                      resized[None]))
    for image, result in zip(images + [resized], batch + single):
        assert_same_detections(model.detect([image])[0], result)


def test_tflite_matches_detect_with_builtin_ops_only(exported):
    model, _, tflite_path = exported
    runner = litert.Interpreter(tflite_path).get_signature_runner()
    for image in shapes_images(3, seed=22):
        (result,) = export.results_from_serving(runner(images=image[None]))
        assert_same_detections(model.detect([image])[0], result)
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    with open(tflite_path, "rb") as source:
        flatbuffer = schema.Model.GetRootAs(bytearray(source.read()), 0)
    codes = [flatbuffer.OperatorCodes(i)
             for i in range(flatbuffer.OperatorCodesLength())]
    custom = [code.CustomCode() for code in codes
              if max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
              == schema.BuiltinOperator.CUSTOM]
    assert custom == []  # no Flex (TensorFlow) ops, no custom ops


def test_metadata_names_inputs_outputs_and_classes(exported):
    model, onnx_path, tflite_path = exported
    session = onnxruntime.InferenceSession(
        onnx_path, providers=["CPUExecutionProvider"])
    from_runtime = json.loads(
        session.get_modelmeta().custom_metadata_map["mrcnn"])
    assert from_runtime == export_onnx.read_onnx_metadata(onnx_path)
    tflite = export_litert.read_litert_metadata(tflite_path)
    runner = litert.Interpreter(tflite_path).get_signature_runner()
    for description, output_names in (
            (from_runtime, [o.name for o in session.get_outputs()]),
            (tflite, list(runner.get_output_details()))):
        assert description["class_names"] == CLASS_NAMES
        assert sorted(description["outputs"]) == sorted(output_names)
        assert description["inputs"]["images"][0] == "uint8"
    assert tflite["inputs"]["images"][1] == [1, 64, 64, 3]
    assert tflite["outputs"]["masks"]["shape"] == [1, 8, 64, 64]
    assert list(runner.get_input_details()["images"]["shape"]) == [
        1, 64, 64, 3]


# Runs a script with tensorflow, keras and mrcnn unimportable, then checks
# that none of them got in by another way.
BLOCKER = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "mrcnn"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Blocked())
sys.argv = sys.argv[1:]
exec(compile(open(sys.argv[0]).read(), sys.argv[0], "exec"))
leaked = [m for m in sys.modules if m.split(".")[0] in
          ("tensorflow", "keras", "mrcnn")]
assert not leaked, leaked
"""


def readme_deploy_blocks():
    """The python blocks of the README's Deploy section that use a
    runtime."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("## Deploy", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    return {runtime: next(b for b in blocks if runtime in b)
            for runtime in ("onnxruntime", "ai_edge_litert")}


@pytest.mark.parametrize("runtime,output", [
    ("onnxruntime", "detections_onnx.png"),
    ("ai_edge_litert", "detections_litert.png")])
def test_readme_examples_run_without_tensorflow(exported, tmp_path, runtime,
                                                output):
    model, onnx_path, tflite_path = exported
    image = shapes_images(1, seed=21)[0]
    Image.fromarray(image).save(tmp_path / "image.jpg", quality=95)
    os.symlink(onnx_path, tmp_path / "mask_rcnn.onnx")
    os.symlink(tflite_path, tmp_path / "mask_rcnn.tflite")
    script = tmp_path / "example.py"
    script.write_text(readme_deploy_blocks()[runtime])
    env = dict(os.environ, PYTHONPATH="")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(script)], cwd=tmp_path,
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    # One line a detection: the class ids of detect() on the decoded JPEG.
    decoded = np.asarray(Image.open(tmp_path / "image.jpg").convert("RGB"))
    expected = model.detect([decoded])[0]["class_ids"]
    printed = [int(line.split()[0]) for line in done.stdout.splitlines()]
    assert printed == list(expected) and printed
    drawn = np.asarray(Image.open(tmp_path / output))
    assert drawn.shape == decoded.shape and (drawn != decoded // 2).any()


def test_portable_mask_paste_agrees_with_unmold_mask():
    """The float32 branch-free paste against utils.unmold_mask (skimage):
    boxes inside, at the border, of one pixel and empty."""
    from mrcnn import utils
    from mrcnn.inference import paste_graph
    rng = np.random.default_rng(4)
    for box in ([3, 5, 40, 30], [40, 50, 64, 80], [10, 10, 11, 12],
                [0, 0, 64, 80], [30, 30, 30, 40]):
        mask = rng.uniform(0, 1, (28, 28)).astype(np.float32)
        mask = (mask + np.linspace(0, 0.5, 28)[None]).clip(0, 1)
        expected = utils.unmold_mask(mask, box, (64, 80))
        actual = paste_graph.paste_mask(
            mask.astype(np.float32), np.array(box, np.int32), (64, 80))
        assert mask_iou(expected, actual.numpy()) >= 0.99
        assert np.logical_xor(expected, actual.numpy()).sum() <= 2


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import fails
    with pytest.raises(ImportError, match=re.escape("mrcnn-keras3[export]")):
        export_portable.require("tf2onnx", "export to ONNX")


def test_export_refuses_an_unknown_format(exported):
    model = exported[0]
    with pytest.raises(ValueError, match="format"):
        model.export("x.bin", format="coreml")


def test_export_refuses_a_16_bit_model():
    """The converters take float32 graphs: a mixed-precision model is
    refused with what to do (mrcnn export builds it in float32)."""
    bf16 = type("Model", (), {"precision": "mixed_bfloat16",
                              "config": ExportConfig()})()
    with pytest.raises(ValueError, match="MIXED_PRECISION = None"):
        export_portable.check_float32(bf16, "onnx")
