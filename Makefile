# make demo : create .venv if missing, install, train the shapes demo on CPU
# make test : same set-up, run the test suite
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
DEMO_OUT ?= logs/shapes_demo

.PHONY: install demo test bench clean

$(STAMP): requirements.txt requirements-imgaug.txt requirements-dev.txt setup.py setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
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

bench: install
	$(PY) benchmarks/data_pipeline.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) build *.egg-info
