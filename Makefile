# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv if missing, install, run the main job on the embedded sample
#   make test   - same set-up, run the tests
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pip on these machines warns about absent local index folders; keep the log readable.
QUIET := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }

export HF_HUB_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export RAY_AUTH_MODE := token

.PHONY: install demo test clean gpu-prep
install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (torch==2.13.0 CPU wheel first, then the rest under a torch constraint)"
	$(PY) -m pip install -q torch==2.13.0 $(QUIET)
	DS_BUILD_OPS=0 $(PY) -m pip install -q -c constraints.txt -e ".[dev]" $(QUIET)
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/idgenrec demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

# For bench/gpu_run.sh on the device machine: pure-Python wheels it lacks, and Beauty beside the working tree.
gpu-prep:
	rm -rf .whl .gpu_data && mkdir -p .whl .gpu_data
	$(PY) -m pip download -q --no-deps --only-binary=:all: -d .whl webdataset==1.0.2 braceexpand==0.1.7 $(QUIET)
	cp -r ../shared/data/Beauty .gpu_data/ && chmod -R u+w .gpu_data

clean:
	rm -rf runs .pytest_cache
