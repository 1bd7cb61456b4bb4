# Brand Studio: `make run` sets everything up and starts the studio; `make test` sets up and runs the tests.
# Both are idempotent: a second call only re-installs when pyproject.toml or this file changed.

PYTHON     ?= $(shell command -v python3.11 || command -v python3)
VENV       ?= .venv
# torch goes in first and pinned, so pip never swaps in a multi-GB CUDA build by itself.
# GPU users: make run TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"
# CPU-only Linux without a local CPU wheel: TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC     ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PORT       ?= 8501
PYTEST_ARGS ?=
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.brand-studio-installed

export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: run test setup lint check bench doctor demo-model tour clean-venv

run: setup
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT) --server.headless true

test: setup check
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip freeze | grep -iE '^torch==' > $(VENV)/torch-constraint.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/torch-constraint.txt -e ".[dev]"
	@touch $(STAMP)

# Architecture contracts, lint and types (also part of `make test`).
check: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/mypy storage brand_kits studio/editing studio/api.py studio/kit_facade.py studio/campaign_facade.py studio/campaign_schemas.py studio/boundary.py studio/schemas.py studio/errors.py studio/settings.py

lint: check

bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks

doctor: setup
	$(BIN)/brand-studio doctor

# Rebuild the committed demo model (studio/builtin_models/demo) from scratch: fixed seed, ~25 min on 2 CPUs.
demo-model: setup
	$(BIN)/python -m training.demo_build --out studio/builtin_models/demo --work data/demo-build

# Re-take the README tour's screenshots: the browser journey (needs chromium), then tests/e2e/tour.py.
tour: setup
	rm -rf data/e2e-artifacts
	BRAND_STUDIO_REQUIRE_E2E=1 BRAND_STUDIO_E2E_ARTIFACTS=$(CURDIR)/data/e2e-artifacts HF_HUB_OFFLINE=1 \
		$(BIN)/python -m pytest -q tests/e2e
	$(BIN)/python -m tests.e2e.tour data/e2e-artifacts tests/e2e/tour

clean-venv:
	rm -rf $(VENV)
