# Two entry points for a fresh machine with Python 3.11 and pip:
#   make run   - run test_input.json through the real handler in RunPod's local mode
#   make test  - ruff, then the whole test suite (what CI runs)
PYTHON ?= python3
UV := $(PYTHON) -m uv

.PHONY: run test deps

deps:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen

# make run uses the tiny random model unless DEFAULT_MODEL names another: a fresh machine has no real weights.
# Set DEFAULT_MODEL=F5TTS_v1_Base (weights in the HF cache, or downloadable) for real speech.
run: deps
	@mkdir -p data/results
	@echo "DEFAULT_MODEL=$${DEFAULT_MODEL:-tiny}"
	DEFAULT_MODEL=$${DEFAULT_MODEL:-tiny} RESULT_DUMP_DIR=data/results $(UV) run --frozen python runpod_handler.py
	$(UV) run --frozen python scripts/dev/show_result.py data/results/local_test.json

test: deps
	$(UV) run --frozen ruff check .
	$(UV) run --frozen pytest
