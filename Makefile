# The README's two commands: `make run` serves the API, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
SECRET_FILE := instance/jwt-secret

.PHONY: install run test lint bench clean constraints

# Every dependency at the version constraints.txt pins (refresh it with `make constraints`).
$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Re-pin every dependency to the newest release setup.cfg allows, resolved in a fresh
# virtualenv; review the diff, run the suite, commit constraints.txt.
constraints:
	rm -rf /tmp/tickets-constraints && $(PYTHON) -m venv /tmp/tickets-constraints
	/tmp/tickets-constraints/bin/python -m pip install --quiet --upgrade pip
	/tmp/tickets-constraints/bin/python -m pip install --quiet -e ".[dev]"
	/tmp/tickets-constraints/bin/python -m pip freeze --exclude-editable | sort > constraints.txt
	rm -rf /tmp/tickets-constraints

# SQLite in instance/, demo data, a printed login, gunicorn on 127.0.0.1:8000.
run: install
	@mkdir -p instance
	@test -s $(SECRET_FILE) || $(BIN)/python -c "import secrets; print(secrets.token_hex(32))" > $(SECRET_FILE)
	@export JWT_SECRET_KEY=$$(cat $(SECRET_FILE)) PORT= GUNICORN_BIND=127.0.0.1:8000 && \
	  $(FLASK) db upgrade && \
	  $(FLASK) seed-demo && \
	  echo "Serving on http://127.0.0.1:8000 (Ctrl-C stops)" && \
	  exec $(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

# SQLite by default; TEST_DATABASE_URL=postgresql://... runs the same suite on PostgreSQL.
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache

# On-demand figures for the hot endpoints (not part of the suite); see benchmarks/bench_api.py,
# then incidents at scale against bare SQL (benchmarks/bench_incidents.py).
bench: install
	$(BIN)/python benchmarks/bench_api.py
	$(BIN)/python benchmarks/bench_incidents.py
