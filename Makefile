# mailflow.remediation: the two commands of the README, and the pieces they are made of.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo benchmark mutation test lint typecheck pytest ansible-lint molecule sanity floor clean

setup:
	PYTHON=$(PYTHON) tools/setup.sh

## The main job against the lab: audit in check mode, remediate, audit again, report.
demo: setup
	$(BIN)/python -m tests.lab.demo

## Every test and quality gate; CI runs exactly this.
test: setup lint typecheck pytest ansible-lint molecule sanity floor

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy plugins tests tools

pytest: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

ansible-lint: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --nocolor

## Each role's molecule scenario, against a lab host. There is no "default" scenario (each starts its own lab), so
## molecule logs "'molecule/default/molecule.yml' glob failed" once before the scenarios: that line is not a failure.
molecule: setup
	cd extensions && PATH=$(CURDIR)/$(BIN):$$PATH ../$(BIN)/molecule test --all

sanity: setup
	PYTHON=$(PYTHON) tools/sanity.sh

## The integration tests against the ansible-core floor of meta/runtime.yml.
floor: setup
	PYTHON=$(PYTHON) tools/floor.sh

## Numbers, not assertions: wall time, round trips and bytes per host across a lab fleet.
benchmark: setup
	$(BIN)/python -m tests.benchmarks.module_runs
	$(BIN)/python -m tests.benchmarks.fleet_audit --hosts 50 200 500 --forks 25
	$(BIN)/python -m tests.benchmarks.lab_scale --hosts 50 200 500
	$(BIN)/python -m tests.benchmarks.intermediate_ca_bundle --hosts 10 50 100 200 --forks 25

## How many planted bugs the unit tests catch, in the controller code and the lab's twins: tens of minutes, so not
## part of test. A partial run: make mutation MUTATION_ARGS="--files tests/lab/runner.py --limit 10".
mutation: setup
	$(BIN)/python tools/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .venv-sanity .venv-floor .collections .cache build
