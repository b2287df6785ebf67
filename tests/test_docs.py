"""The API reference site builds, offline and without a warning, and holds
the pages it is for: `make docs`'s build (mkdocs build --strict), into a
temporary folder, in a subprocess (about 10-20 s)."""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS_MODULES = ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python",
                "material", "mkdocs_jupyter")


def _missing():
    missing = []
    for name in DOCS_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ImportError:
            missing.append(name)
    return missing


pytestmark = pytest.mark.skipif(
    bool(_missing()),
    reason="docs tools not installed ({}): `make install` installs them "
           "from requirements-dev.txt".format(", ".join(_missing())))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("docs") / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               # offline: a fetch through a proxy-aware client fails
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               no_proxy="", NO_PROXY="")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--site-dir", str(site_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return site_dir


def _page(site, path):
    page = site / path
    assert page.is_file(), "{} missing from the site".format(path)
    return page.read_text(encoding="utf-8")


def test_readme_troubleshooting_and_package_map(site):
    index = _page(site, "index.html")
    assert "Mask R-CNN for Keras 3 and TensorFlow 2" in index
    # the README's link to docs/troubleshooting.md, pointed at the site
    assert 'href="troubleshooting.html"' in index
    assert 'href="contributing.html"' in index
    assert "When things go wrong" in _page(site, "troubleshooting.html")
    assert "one module a stage" in _page(site, "contributing.html")
    assert _page(site, "benchmarks.html")


def test_api_reference_of_the_faces(site):
    model = _page(site, "api/model.html")
    assert 'id="mrcnn.model.MaskRCNN"' in model
    assert 'id="mrcnn.model.MaskRCNN.detect"' in model
    config = _page(site, "api/config.html")
    assert 'id="mrcnn.config.Config.GPU_COUNT"' in config
    # a Config value is documented by the comment above it
    assert "Number of GPUs to use." in config
    assert 'id="mrcnn.visualize.display_instances"' in _page(
        site, "api/visualize.html")
    # a face's re-exports link to where they are defined
    utils = _page(site, "api/utils.html")
    assert 'href="structures.html#mrcnn.structures.dataset.Dataset"' in utils
    # argument lines stay one a line
    assert "0..255.<br />" in _page(site, "api/visualize.html")


@pytest.mark.parametrize("package", [
    "network", "training", "inference", "evaluation", "drawing", "weights",
    "structures", "data", "datasets", "cli"])
def test_api_reference_of_each_subpackage(site, package):
    page = _page(site, "api/{}.html".format(package))
    assert 'id="mrcnn.{}"'.format(package) in page
    # its modules too (show_submodules)
    assert 'id="mrcnn.{}.'.format(package) in page


def test_notebooks_rendered_as_saved(site):
    notebooks = sorted(
        os.path.relpath(os.path.join(folder, name), ROOT)
        for folder, _, names in os.walk(os.path.join(ROOT, "samples"))
        for name in names
        if name.endswith(".ipynb") and ".ipynb_checkpoints" not in folder)
    assert "samples/inspect_data.ipynb" in notebooks
    assert "samples/inspect_model.ipynb" in notebooks
    for notebook in notebooks:
        page = _page(site, notebook[:-len(".ipynb")] + ".html")
        assert "jp-Notebook" in page or "jupyter-wrapper" in page, notebook


def test_every_public_module_has_its_reference(site):
    """A module added to mrcnn without a page (or outside a documented
    package) fails here."""
    pages = "".join(path.read_text(encoding="utf-8")
                    for path in (site / "api").glob("*.html"))
    package_dir = os.path.join(ROOT, "mrcnn")
    missing = []
    for folder, _, names in os.walk(package_dir):
        for name in names:
            if not name.endswith(".py") or name == "__main__.py":
                continue
            parts = os.path.relpath(os.path.join(folder, name[:-3]),
                                    ROOT).split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if any(part.startswith("_") for part in parts):
                continue  # private: not part of the reference
            module = ".".join(parts)
            if 'id="{}"'.format(module) not in pages:
                missing.append(module)
    assert missing == [], missing
