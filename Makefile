# make demo : create .venv if missing, install, train the shapes demo on CPU
# make test : same set-up, run the test suite, then the wheel check
# make wheel-test : build the wheel, install it with --no-deps beside the
#              project's dependencies in a fresh virtualenv, run `mrcnn --help`
#              and a tiny train-then-detect from outside the source tree,
#              after `from imgaug import augmenters` before any mrcnn import
# make docs : same set-up, build the API reference site offline into
#              build/site (mkdocs build --strict: a warning fails it);
#              open build/site/index.html
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
DEMO_OUT ?= logs/shapes_demo
WHEEL_DIR  := build/wheel
WHEEL_VENV := build/wheel-venv

.PHONY: install demo test wheel-test docs bench clean

$(STAMP): requirements.txt requirements-imgaug.txt requirements-dev.txt requirements-export.txt setup.py setup.cfg pyproject.toml mrcnn_imgaug_hook.pth
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# A .venv made before the switch to `tensorflow` holds tensorflow-cpu,
	# which writes the same tensorflow/ package: remove both, so that the
	# line below installs one TensorFlow, whole.
	if $(PY) -m pip show -q tensorflow-cpu 2>/dev/null; then \
	  $(PY) -m pip uninstall -q -y tensorflow-cpu tensorflow; fi
	# requirements-dev.txt brings albumentations (optional for users, tested
	# here); it depends on opencv-python-headless, so one OpenCV stays.
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	# The export extra: tf2onnx, onnxruntime and ai-edge-litert, for the
	# ONNX and LiteRT round trips of the tests.
	$(PY) -m pip install -q -r requirements-export.txt
	# imgaug without its dependencies: it asks for opencv-python (needs libGL);
	# requirements.txt brings the headless OpenCV instead.
	$(PY) -m pip install -q --no-deps -r requirements-imgaug.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) samples/shapes/train_shapes.py --out $(DEMO_OUT)

test: install
	$(PY) -m pytest tests -q -p no:cacheprovider
	$(MAKE) wheel-test

# The wheel is built from the checkout's setuptools (no network); the fresh
# virtualenv gets the dependencies as a user would, then the wheel alone.
wheel-test: install
	# build/lib is removed too: files left there by earlier builds would ship.
	rm -rf $(WHEEL_DIR) $(WHEEL_VENV) build/lib build/bdist.*
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w $(WHEEL_DIR) .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q -r requirements.txt
	$(WHEEL_VENV)/bin/python -m pip install -q --no-deps -r requirements-imgaug.txt
	$(WHEEL_VENV)/bin/python -m pip install -q --no-deps $(WHEEL_DIR)/*.whl
	# imgaug before mrcnn in a fresh interpreter: the wheel's .pth hook.
	work=$$(mktemp -d) && cp .ci/wheel_smoke.py "$$work"/ && cd "$$work" \
	  && "$(CURDIR)/$(WHEEL_VENV)/bin/python" -c "from imgaug import augmenters" \
	  && "$(CURDIR)/$(WHEEL_VENV)/bin/mrcnn" --help > /dev/null \
	  && "$(CURDIR)/$(WHEEL_VENV)/bin/python" wheel_smoke.py "$$work/logs" \
	  && cd / && rm -rf "$$work"

# mkdocs.yml: the README, docs/, CONTRIBUTING.md, the notebooks as saved (not
# run) and the API reference read from the source (nothing imported).
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: install
	$(PY) benchmarks/data_pipeline.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) build *.egg-info
