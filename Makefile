# Every target makes .venv when it is missing; nothing outside it is touched.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint sim clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/viaform demo

test: $(STAMP)
	$(BIN)/ruff check drivers sequencer simulators tests benchmarks
	$(BIN)/mypy --strict drivers
	$(BIN)/mypy sequencer
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check drivers sequencer simulators tests benchmarks

sim: $(STAMP)
	$(BIN)/viaform sim

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
