# bart-pretrain: one short recipe per target. `make pretrain` works as the first command on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
# The CPU wheel by default; GPU users: make setup TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
DATA   ?= data
PRETRAIN_CONFIG ?= configs/pretrain/tiny.yaml
FINETUNE_CONFIG ?= configs/finetune/debian_tiny.yaml
ABLATION_CONFIG ?= configs/ablation/default.yaml
# e.g. ABLATION_ARGS='--table_only true' (the table from the finished cells) or "--seeds '[1234,1235,1236]'"
ABLATION_ARGS ?=
# Extra flags. A second `make pretrain` refuses, in one line, to overwrite the finished run:
# PRETRAIN_ARGS='--ckpt_path last' resumes it, PRETRAIN_ARGS='--overwrite true' starts over (the old run is moved aside)
PRETRAIN_ARGS ?=
FINETUNE_ARGS ?=
TEST_WORKERS ?= auto

.PHONY: setup data pretrain finetune-summarize finetune-names ablation ablation-quick test test-multiprocess bench gpu-check lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

data: $(DATA)/manifest.json

$(DATA)/manifest.json: | setup
	$(BIN)/bart-pretrain build-data --out $(DATA)

pretrain: setup data
	$(BIN)/bart-pretrain pretrain -c $(PRETRAIN_CONFIG) $(PRETRAIN_ARGS)

finetune-summarize: setup data
	$(BIN)/bart-pretrain finetune -c $(FINETUNE_CONFIG) --compare_scratch true $(FINETUNE_ARGS)

# The second shipped task (Debian synopsis -> package name; README "Other tasks"). A data/ built before that task
# existed has no package_names/: build-data adds it (its other outputs are byte-identical for the same inputs)
finetune-names: setup data $(DATA)/package_names/test.jsonl
	$(BIN)/bart-pretrain finetune -c configs/finetune/debian_names.yaml --compare_scratch true $(FINETUNE_ARGS)

$(DATA)/package_names/test.jsonl: | setup
	$(BIN)/bart-pretrain build-data --out $(DATA)

# Rank the noise recipes and objectives at equal target tokens, two seeds (BART Table 1, T5's objectives): results in
# runs/ablation/default/results.{md,json,csv,png}; reruns resume. An estimated 3-4 hours on an idle 2-core CPU
ablation: setup data
	$(BIN)/bart-pretrain ablate -c $(ABLATION_CONFIG) $(ABLATION_ARGS)

# A first look (3 recipes x 2 seeds, a quarter of the budget; an estimated 25 minutes): runs/ablation/quick/
ablation-quick: setup data
	$(BIN)/bart-pretrain ablate -c configs/ablation/quick.yaml $(ABLATION_ARGS)

# The whole suite, one worker per core (pytest-xdist; each test file stays on one worker, with its module fixtures),
# but the multi-process scale-out tests: test-multiprocess runs those (about 2 minutes; .ci/run runs both)
test: setup
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not multiprocess"

test-multiprocess: setup
	$(BIN)/pytest -n 0 -m multiprocess --durations=0

bench: setup
	$(BIN)/python -m bart_pretrain.bench

# On a GPU machine: set-up if needed, pytest -m gpu, the GPU bench; results in runs/gpu-check/ (scripts/gpu-check.sh)
gpu-check:
	scripts/gpu-check.sh

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .ruff_cache
