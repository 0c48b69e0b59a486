# Every target makes .venv when it is missing; nothing outside it is touched.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint sim clean chromium

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/viaform demo

# The browser tests (tests/browser) drive Debian's Chromium through Playwright (Playwright's own
# browser download is not used). Installed here when missing and make runs as root; otherwise
# the tests fail, saying what is missing (they never skip).
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium fonts-dejavu-core fonts-liberation >/dev/null; \
	fi

test: $(STAMP) chromium
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
