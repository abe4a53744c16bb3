# The one entry point: make help | run | test | lint | fmt
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help venv run test lint fmt clean

help:  ## show this help
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 goes in first so pip takes the CPU build on disk, never a CUDA wheel.
# The ray extra (issue 9) adds about 200 MB of wheels: about 45 s on top of dev here, 3 min and
# 750 MB on its own in a fresh venv; without it tests/ray skip, saying so. The openvino extra
# (VP_EMBED_BACKEND=openvino) is one ~50 MB wheel with no other dependency.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray,openvino]'
	touch $(STAMP)

venv: $(STAMP)  ## create or update .venv with everything installed

run: $(STAMP)  ## build the default collection if missing, then serve on 127.0.0.1:8000
	$(BIN)/vector-primer serve

test: $(STAMP)  ## run the whole suite (unit, property, doctests, real model, real server)
	$(BIN)/python -m pytest -q --durations=25

lint: $(STAMP)  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)  ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove the virtual environment
	rm -rf $(VENV)

# ---- evaluation: full runs over ../shared/data, not in CI (README "Evaluation") -------------
# JSON results go to bench/results/ (git-ignored). The engine keeps embedded corpora under
# ~/.cache/vector-primer/eval, the service started here under .../eval-served: only the first
# run embeds SciFact (several minutes on one thread); later runs reuse the vectors.
SHARED_DATA ?= $(abspath ../shared/data)
EVAL_OUT ?= bench/results
EVAL_PORT ?= 8765
EVAL_SERVED ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/vector-primer/eval-served
EVAL := $(BIN)/python -m indexer.evaluation
.PHONY: eval
eval: $(STAMP)  ## full evaluation runs (not in CI)
	@mkdir -p $(EVAL_OUT)
	$(EVAL) sts $(SHARED_DATA)/stsbenchmark/sts-test.csv --out $(EVAL_OUT)/eval-sts.json
	$(EVAL) retrieval $(SHARED_DATA)/scifact --split train --index all --modes all \
	  --out $(EVAL_OUT)/eval-retrieval.json
	$(EVAL) analogy $(SHARED_DATA)/bats_3.0 --out $(EVAL_OUT)/eval-analogy.json
	$(EVAL) wordsim $(SHARED_DATA)/men/MEN_dataset_natural_form_full \
	  --out $(EVAL_OUT)/eval-wordsim.json
	VP_BUILD_WORDS=false VP_LOG_LEVEL=warning $(BIN)/python -m service serve \
	  --port $(EVAL_PORT) --data-dir $(EVAL_SERVED) & pid=$$!; trap "kill $$pid" EXIT; \
	url=http://127.0.0.1:$(EVAL_PORT); \
	$(EVAL) sts $(SHARED_DATA)/stsbenchmark/sts-test.csv --url $$url --wait 120 \
	  --out $(EVAL_OUT)/eval-sts-http.json && \
	$(EVAL) wordsim $(SHARED_DATA)/men/MEN_dataset_natural_form_full --url $$url \
	  --out $(EVAL_OUT)/eval-wordsim-http.json && \
	$(EVAL) analogy $(SHARED_DATA)/bats_3.0 --url $$url --out $(EVAL_OUT)/eval-analogy-http.json && \
	$(EVAL) retrieval $(SHARED_DATA)/scifact --split train --url $$url --modes all \
	  --out $(EVAL_OUT)/eval-retrieval-http.json

# ---- benchmarks: our service against Chroma, txtai and FAISS, not in CI (README "Performance") --
# Peers are installed by the harness into their own venvs under ~/.cache/vector-primer-bench;
# the corpus vectors are embedded once and cached there. Results: bench/results/bench.{json,md}
# and recall_qps.png. BENCH_ARGS passes options, e.g. BENCH_ARGS="--limit 20000 --rounds 2".
BENCH_ARGS ?=
.PHONY: bench
bench: $(STAMP)  ## benchmarks against Chroma, txtai and FAISS (not in CI)
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.embed

# ---- reliability: the full tier of tests/reliability (issue 6, README "Reliability") ----------
# `make test` runs the fast tier. This runs the full counts of the R1-R18 table (the tests marked
# reliability_full) and prints what they measured (-s): kills, fuzzing, soak, overload.
.PHONY: reliability
reliability: $(STAMP)  ## full reliability tier: kill -9 x20, fuzzing x100/op, 60 s soak (not in CI)
	RELIABILITY_FULL=1 $(BIN)/python -m pytest -q -s -p no:cacheprovider -m reliability_full \
	  tests/reliability

# ---- reliability, storage half (README "Reliability: storage") --------------------------------
# The same tests/reliability/test_storage_*.py that `make test` runs, at the full counts of the
# R1-R18 table (200 kills, 50 publish kills, every byte of the WAL tail, ...); the figures go to
# stdout and bench/results/reliability-storage-*.json. `make reliability` runs this too.
.PHONY: durability
durability: $(STAMP)  ## storage reliability at full counts: 200 SIGKILLs, torn files, faults
	RELIABILITY_FULL=1 $(BIN)/python -m pytest -q -s -p no:cacheprovider \
	  tests/reliability/test_storage_*.py
reliability: durability

# make test runs tests/ray too: the 2-node cluster once, hash (300 docs) then the real model
# (30 texts) in it, about 1 min here. This runs them alone with 3,000 and 300 docs (about 80 s).
distributed: $(STAMP)  ## the Ray tests alone, the 2-node runs at full size
	RAY_FULL=1 $(BIN)/python -m pytest -q tests/ray
