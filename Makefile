# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit system-deps clean test-glance test-glance33 bench

# Glance 28 (the last release with location strategies) in its own virtualenv:
# its oslo.* pins clash with the daemon's dependencies. This project is installed
# there without dependencies: `strategies` needs none, and Glance must find its
# entry points. The stamp keeps a second `make test` from reinstalling.
GLANCE_VERSION ?= 28.2.0
GLANCE_VENV    ?= .venv-glance
GLANCE_STAMP   := $(GLANCE_VENV)/.installed

# Glance 33 (newest; store weights and ?prefer=, no location strategies) in a third
# virtualenv, pinned by tests/glance33/constraints.txt (a freeze of what it resolved to).
GLANCE33_VERSION ?= 33.0.0
GLANCE33_VENV    ?= .venv-glance33
GLANCE33_STAMP   := $(GLANCE33_VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# One recipe for both Glance virtualenvs; each stamp names its release and pins.
$(GLANCE_STAMP): RELEASE := $(GLANCE_VERSION)
$(GLANCE_STAMP): PINS := tests/glance/constraints.txt
$(GLANCE_STAMP): pyproject.toml tests/glance/constraints.txt
$(GLANCE33_STAMP): RELEASE := $(GLANCE33_VERSION)
$(GLANCE33_STAMP): PINS := tests/glance33/constraints.txt
$(GLANCE33_STAMP): pyproject.toml tests/glance33/constraints.txt
$(GLANCE_STAMP) $(GLANCE33_STAMP):
	test -x $(@D)/bin/python || $(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install --quiet --upgrade pip
	$(@D)/bin/python -m pip install --quiet -c $(PINS) 'glance==$(RELEASE)' pytest hypothesis
	$(@D)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

## The main job: start the sidecar on 127.0.0.1:29292 (state under ./var/ in a checkout).
run: $(STAMP)
	$(BIN)/location-sidecar serve

## The whole test suite, as CI runs it.
test: system-deps $(STAMP) lint typecheck unit test-glance test-glance33

system-deps:
	bash scripts/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict strategies/ probes/ sidecar/ bench/

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Differential and loader tests against the real Glance 28 (tests/glance/).
## The glance-api end-to-end test runs the sidecar from $(VENV), hence $(STAMP).
test-glance: $(GLANCE_STAMP) $(STAMP)
	$(GLANCE_VENV)/bin/python -m pytest tests/glance $(PYTEST_ARGS)

## Glance 33 end to end (tests/glance33/): weights regenerated and reloaded, ?prefer=.
test-glance33: $(GLANCE33_STAMP) $(STAMP)
	$(GLANCE33_VENV)/bin/python -m pytest tests/glance33 $(PYTEST_ARGS)

## The benchmark (bench/): strategies side by side, the sidecar's cost; updates BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python -m bench --out BENCHMARKS.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(GLANCE_VENV) $(GLANCE33_VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis

## Reliability (tests/reliability/): longer runs than CI's.
.PHONY: fuzz soak attack
FUZZ_EXAMPLES ?= 1000
SOAK_SECONDS  ?= 600

## schemathesis with many examples and a new seed each run.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED= $(BIN)/python -m pytest -s tests/reliability/test_fuzz.py

## Steady rank + observation load against a real daemon while it probes 4 local backends;
## fails on any error, RSS growth >= 10% or a probe starting over 0.5 s off its schedule.
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.load --seconds $(SOAK_SECONDS)

## The data attacks of issue 14 (RELIABILITY.md section 7) against a real daemon, printed;
## then the start-up memory test with 2,000,000 history rows (about 1 min, ~300 MiB of disk);
## then hostile clients (RELIABILITY.md section 8, about 3 minutes): 1100 half-sent heads
## (daemon open-files limit 1024), 480 stalled 1 MiB bodies, 2 clients of worst-case
## file:// rank requests, printed as JSON.
ATTACK_HISTORY_ROWS ?= 2000000
ATTACK_SERVER_ARGS  ?= --slow-heads 1100 --slow-bodies 480 --rank-seconds 10
attack: $(STAMP)
	$(BIN)/python -m tests.reliability.attack --rows $(ATTACK_HISTORY_ROWS)
	ATTACK_HISTORY_ROWS=$(ATTACK_HISTORY_ROWS) $(BIN)/python -m pytest -s \
		tests/reliability/test_startup_memory.py
	$(BIN)/python -m tests.reliability.attack_server $(ATTACK_SERVER_ARGS)
