# `make demo` and `make test` set everything up on a fresh machine (Python 3.11+).
VENV ?= .venv
PY := $(VENV)/bin/python

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first, pinned: the tests' version (a CPU build where one lies on the machine); then the rest.
$(VENV)/.installed: requirements.txt requirements-train.txt requirements-dev.txt pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .  # `import gpt40k` and the gpt40k-* commands from any folder
	touch $@

demo: $(VENV)/.installed
	$(PY) app.py

# The page's ES modules under Node's own test runner, then the Python suite; the wall time at the end.
test: $(VENV)/.installed
	@start=$$(date +%s); \
	if command -v node >/dev/null; then node --test tests/js/ || exit 1; \
	else echo "node not found: the page's JavaScript tests (tests/js/) are skipped"; fi; \
	$(PY) -m pytest -q; status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s wall time"; exit $$status

bench: $(VENV)/.installed
	$(PY) bench/speed.py

.PHONY: demo test bench
