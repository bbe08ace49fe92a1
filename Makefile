# maskbench: `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= $(CURDIR)/data
N      ?= 16
STAMP  := $(VENV)/.installed

DEVICE ?= auto
OUT    ?= reproduce
REAL   ?= $(or $(MASKBENCH_FIXTURES),$(CURDIR)/../shared/fixtures/real)

.PHONY: install demo test stress lint bench tables tables-quick clean reproduce reproduce-smoke reproduce-clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,cards]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install maskbench with its test tools

demo: $(STAMP)  ## render sample data of all three formats, mask and rotate it, verify everything
	$(BIN)/maskbench sample --dataset BIWI --n $(N) --data-root $(DATA) --overwrite
	$(BIN)/maskbench sample --dataset 300W_LP --n $(N) --data-root $(DATA) --overwrite
	$(BIN)/maskbench sample --dataset AFLW2000 --n $(N) --data-root $(DATA) --overwrite
	$(BIN)/maskbench info AFLW2000 --protocol-filter --data-root $(DATA)
	$(BIN)/maskbench synthesize --src BIWI --out BIWI_masked --data-root $(DATA) --overwrite
	$(BIN)/maskbench synthesize --src 300W_LP --workers 2 --data-root $(DATA) --overwrite
	$(BIN)/maskbench synthesize --src AFLW2000 --data-root $(DATA) --overwrite
	$(BIN)/maskbench rotate --range -45 45 --data-root $(DATA) --overwrite
	$(BIN)/maskbench rotate --src AFLW2000 --angles=-30,30 --data-root $(DATA) --overwrite
	$(BIN)/maskbench rotate --src BIWI_masked --data-root $(DATA) --overwrite
	$(BIN)/maskbench verify BIWI 300W_LP AFLW2000 BIWI_masked 300W_LP_masked AFLW2000_masked \
	    BIWI_rotated AFLW2000_rotated BIWI_masked_rotated --data-root $(DATA)
	@echo "demo outputs are in $(DATA): sample data (BIWI/ 300W_LP/ AFLW2000/), *_masked/, *_rotated/"

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest -q

stress: $(STAMP)  ## longer runs: SIGKILL at 10 random points; 30 + 10 writer races; the 5-minute training bar
	MASKBENCH_STRESS=1 $(BIN)/python -m pytest -q tests/test_runs.py -k sigkill
	MASKBENCH_RACES=30 $(BIN)/python -m pytest -q tests/test_ownership.py -k writer
	MASKBENCH_SLOW=1 $(BIN)/python -m pytest -q tests/test_training.py -k few_cpu_minutes
	$(BIN)/python -m pytest -q tests/reliability tests/test_manifest.py

lint: $(STAMP)
	$(BIN)/ruff check maskbench tests benchmarks

tables: tables-quick $(STAMP)  ## regenerate every measured number: README and docs/ tables, generalisation, benchmarks, both reproduce reports (about 70 min)
	$(BIN)/python benchmarks/generalisation_seeds.py 4 --readme
	$(BIN)/python benchmarks/run_all.py
	rm -rf .tables-sample && $(BIN)/maskbench reproduce --out .tables-sample --device cpu && \
	    cp .tables-sample/REPORT.md docs/reproduce_sample_REPORT.md
	if [ -d "$(REAL)/aflw2000_dev" ]; then rm -rf .tables-real && $(BIN)/maskbench reproduce --preset real \
	    --data "$(REAL)/aflw2000_dev" --out .tables-real \
	    --device cpu && cp .tables-real/REPORT.md docs/reproduce_real_REPORT.md && $(BIN)/python docs/make_claim.py; fi
	if [ -d "$(REAL)/aflw2000_dev" ]; then $(BIN)/python docs/make_placement.py && $(BIN)/python docs/make_leaderboard.py; fi

tables-quick: $(STAMP)  ## only the README tables docs/make_tables.py writes (about 5 minutes)
	$(BIN)/python docs/make_tables.py

bench: $(STAMP)  ## run the benchmarks and write benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run_all.py

reproduce: $(STAMP)  ## the whole grid: sample data (default) or `make reproduce DATA=/datasets DEVICE=cuda`
	$(BIN)/maskbench reproduce --out $(OUT) --device $(DEVICE) $(if $(filter $(CURDIR)/data,$(DATA)),,--data $(DATA))

reproduce-smoke: $(STAMP)  ## the same pipeline at toy size (about a minute)
	$(BIN)/maskbench reproduce --preset smoke --out $(OUT)-smoke --device cpu

reproduce-clean:  ## delete the outputs of make reproduce / reproduce-smoke
	rm -rf $(OUT) $(OUT)-smoke

clean:
	rm -rf $(VENV) data build *.egg-info
