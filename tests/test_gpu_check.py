"""benchmarks/gpu_check.sh --dry-run: the GPU check's steps, on this CPU
with a tiny model, end in one JSON line that says what each step found;
and the summary's "does the feed keep up" arithmetic, by hand."""

import json
import os
import subprocess
import sys

import pytest

from tests.tiny import skip_if_16_bit_floats_cannot_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")
SUMMARY = [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"),
           "summary"]


def test_dry_run_runs_every_step_and_prints_one_json_line():
    skip_if_16_bit_floats_cannot_run()  # mixed_float16 detect() runs
    env = dict(os.environ, PYTHON=sys.executable)
    result = subprocess.run([SCRIPT, "--dry-run"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["run"]["mode"] == "dry" and not report["run"]["failed"]
    assert report["device"]["tensorflow"].startswith("2.")
    assert isinstance(report["device"]["gpus"], list)
    tests = report["tests"]
    assert tests["rc"] == 0 and tests["collect_only"] is True
    assert int(tests["summary"].split()[0]) > 100  # "N tests collected"
    detect = report["detect"]["detect"]
    assert set(detect) == {"float32", "mixed_float16"}
    assert all(v["warm_median_s"] > 0 for v in detect.values()), detect
    steps = report["train"]["steps"]
    assert list(steps) == ["float32"] and steps["float32"]["warm_median_s"] > 0
    feed = report["feed_keeps_up"]
    assert feed["feed_images_per_s"] == report["feed"]["feed_images_per_s"]
    assert feed["train_images_per_s"] == pytest.approx(
        2 / steps["float32"]["warm_median_s"], rel=1e-2)
    assert feed["keeps_up"] == (feed["feed_images_per_s"]
                                >= feed["train_images_per_s"])


def write(folder, name, value):
    path = folder / (name + ".json")
    path.write_text("log line\n" + json.dumps(value) + "\n")
    return str(path)


def test_summary_compares_the_feed_with_the_fastest_step(tmp_path):
    files = [
        write(tmp_path, "train", {"images_per_step": 2, "steps": {
            "float32": {"warm_median_s": 0.5},
            "mixed_float16": {"warm_median_s": 0.25},
            "broken": {"error": "OOM"}}}),
        write(tmp_path, "feed", {"feed_images_per_s": 6.0}),
    ]
    out = subprocess.run(SUMMARY + files, capture_output=True, text=True,
                         check=True)
    report = json.loads(out.stdout)
    # 2 images in 0.25 s: 8 images/s needed, 6 fed.
    assert report["feed_keeps_up"] == {"train_images_per_s": 8.0,
                                       "feed_images_per_s": 6.0,
                                       "keeps_up": False}
    assert report["train"]["steps"]["broken"] == {"error": "OOM"}


def test_summary_without_timings_says_nothing_about_the_feed(tmp_path):
    files = [write(tmp_path, "train", {"images_per_step": 2, "steps": {
                 "float32": {"error": "failed"}}}),
             write(tmp_path, "feed", {"feed_images_per_s": 6.0})]
    out = subprocess.run(SUMMARY + files, capture_output=True, text=True,
                         check=True)
    assert "feed_keeps_up" not in json.loads(out.stdout)
