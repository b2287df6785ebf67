"""The sample notebooks run top to bottom with their tiny settings, in a
scratch working folder, through nbclient and the venv's python3 kernel; the
committed notebooks carry no outputs."""

import glob
import os
import re

import pytest

from conftest import nuclei_dir

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel", reason="the notebooks run on ipykernel")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = {
    "train_shapes": os.path.join(REPO_ROOT, "samples", "shapes",
                                 "train_shapes.ipynb"),
    "inspect_data": os.path.join(REPO_ROOT, "samples", "inspect_data.ipynb"),
    "inspect_model": os.path.join(REPO_ROOT, "samples",
                                  "inspect_model.ipynb"),
    "inspect_nucleus_data": os.path.join(REPO_ROOT, "samples", "nucleus",
                                         "inspect_nucleus_data.ipynb"),
}
CELL_TIMEOUT_S = 600


def execute(name, workdir, logs, **env_values):
    """Runs a notebook with the tiny settings; returns the executed copy.

    Any cell error raises nbclient's CellExecutionError with the traceback.
    The kernel gets the settings (and env_values) through its environment;
    the notebook on disk is left untouched.
    """
    notebook = nbformat.read(NOTEBOOKS[name], as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}})
    env = dict(os.environ, MRCNN_NOTEBOOK_TINY="1", MRCNN_ROOT=REPO_ROOT,
               MRCNN_LOGS=str(logs), TF_CPP_MIN_LOG_LEVEL="2", **env_values)
    client.execute(env=env)
    return notebook


def printed_text(notebook):
    """Everything the notebook's cells printed to stdout."""
    return "".join(output.get("text", "")
                   for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs
                   if output.output_type == "stream"
                   and output.get("name") == "stdout")


def png_count(notebook):
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs)


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """train_shapes.ipynb executed once; its logs folder is shared with the
    inspect_model test, which loads the checkpoint."""
    workdir = tmp_path_factory.mktemp("train_shapes_cwd")
    logs = tmp_path_factory.mktemp("notebook_logs")
    notebook = execute("train_shapes", workdir, logs)
    return {"notebook": notebook, "logs": str(logs), "workdir": str(workdir)}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_notebook_is_valid_and_has_no_outputs(name):
    notebook = nbformat.read(NOTEBOOKS[name], as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.source[:80]
            assert cell.execution_count is None, cell.source[:80]


def test_train_shapes_trains_detects_and_scores(shapes_run):
    printed = printed_text(shapes_run["notebook"])
    # Two stages: all layers up to epoch 1, then the fine-tuning with
    # frozen batch norm (a new training model) up to epoch 2.
    checkpoints = sorted(glob.glob(os.path.join(
        shapes_run["logs"], "shapes*", "mask_rcnn_shapes_*.weights.h5")))
    assert [os.path.basename(c) for c in checkpoints] == [
        "mask_rcnn_shapes_0001.weights.h5", "mask_rcnn_shapes_0002.weights.h5"]
    assert "Loading weights from {}".format(checkpoints[-1]) in printed
    found = re.search(r"^mAP:\s+(\S+)$", printed, re.MULTILINE)
    assert found, printed[-2000:]
    assert 0.0 <= float(found.group(1)) <= 1.0
    # Sample masks, ground truth and detections were drawn.
    assert png_count(shapes_run["notebook"]) >= 4
    # Nothing was written to the working folder or the repository's logs.
    assert os.listdir(shapes_run["workdir"]) == []


def test_inspect_data_runs_and_rpn_targets_hit_the_ground_truth(
        tmp_path_factory):
    notebook = execute("inspect_data",
                       tmp_path_factory.mktemp("inspect_data_cwd"),
                       tmp_path_factory.mktemp("inspect_data_logs"))
    printed = printed_text(notebook)
    # The positive anchors moved by their RPN box targets land on ground
    # truth boxes (IoU ~1): the feed's targets and the anchors agree.
    found = re.search(r"IoU of each refined anchor with its best ground "
                      r"truth box: \[([^\]]*)\]", printed)
    assert found, printed[-2000:]
    ious = [float(v) for v in found.group(1).split()]
    assert ious and min(ious) > 0.99
    assert png_count(notebook) >= 8


def test_inspect_model_inspects_the_train_shapes_checkpoint(
        shapes_run, tmp_path_factory):
    notebook = execute("inspect_model",
                       tmp_path_factory.mktemp("inspect_model_cwd"),
                       shapes_run["logs"])
    printed = printed_text(notebook)
    last = sorted(glob.glob(os.path.join(
        shapes_run["logs"], "shapes*", "mask_rcnn_shapes_*.weights.h5")))[-1]
    assert "No shapes checkpoint" not in printed
    assert "Loading weights {}".format(last) in printed
    assert re.search(r"bbox AP=\d\.\d{3} AP50=", printed)
    assert re.search(r"^\d+ weight tensors$", printed, re.MULTILINE)
    assert png_count(notebook) >= 8


def test_inspect_nucleus_data_reports_counts_and_anchor_coverage(
        tmp_path_factory):
    root = nuclei_dir()
    if not (root / "stage1_train").is_dir():
        pytest.skip("nuclei dataset not found at {} (set MRCNN_NUCLEI_DIR)"
                    .format(root))
    workdir = tmp_path_factory.mktemp("inspect_nucleus_cwd")
    notebook = execute("inspect_nucleus_data", workdir,
                       tmp_path_factory.mktemp("inspect_nucleus_logs"),
                       MRCNN_NUCLEI_DIR=str(root))
    printed = printed_text(notebook)
    # The counts are those of the mask files on disk.
    counts = [len(os.listdir(os.path.join(root, "stage1_train", i, "masks")))
              for i in os.listdir(os.path.join(root, "stage1_train"))]
    found = re.search(r"Nuclei per image: min (\d+), median \S+, max (\d+) "
                      r"\((\d+) in all\)", printed)
    assert found, printed[-2000:]
    assert [int(v) for v in found.groups()] == [min(counts), max(counts),
                                                sum(counts)]
    found = re.search(r"config: +RPN_ANCHOR_SCALES=\[([^\]]*)\].*: (\d+) of "
                      r"(\d+) boxes", printed)
    assert found, printed[-2000:]
    from samples.nucleus import nucleus
    assert [int(v) for v in found.group(1).split(",")] == list(
        nucleus.NucleusConfig.RPN_ANCHOR_SCALES)
    assert 0 <= int(found.group(2)) <= int(found.group(3))
    assert png_count(notebook) >= 5
    assert os.listdir(str(workdir)) == []
