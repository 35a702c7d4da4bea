# Two commands for newcomers: `make run` and `make test`. Both build .venv first: the exact
# versions in requirements.lock (with hashes), then quakealert itself in editable mode.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint docs lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The demo's state: ~/.local/state/quakealert (or $STATE_DIRECTORY), where `quakealert token` finds it.
run: $(STAMP)
	$(BIN)/quakealert run $(if $(CONFIG),--config $(CONFIG),)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check quakealert tests bench
	$(BIN)/mypy

# docs/config.md from the schema in quakealert/config.py (a test compares the two)
docs: $(STAMP)
	$(BIN)/quakealert config docs --output docs/config.md

# After changing dependencies in pyproject.toml: pin them (and theirs) again, with hashes.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--extra test --extra dev -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) var .pytest_cache
