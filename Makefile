# Workstream: `make run` (embedded SQLite, nothing but Python 3.11 needed) and `make test`
# (PostgreSQL, Redis and RabbitMQ at their default local addresses, plus TEST_PACKAGES below).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/workstream
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

.PHONY: run test test-packages test-prereqs install install-dev migrate demo lint format check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Wheels only: `make run` never compiles (tests/test_requirements.py keeps it so).
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --only-binary :all: -r requirements.txt
	touch $@

# requirements-dev.txt includes requirements-ldap.txt: python-ldap builds from source here.
$(VENV)/.installed-dev: requirements.txt requirements-dev.txt requirements-ldap.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The embedded default: SQLite file, Celery tasks run eagerly, events off, local-memory cache.
RUN_ENV := DATABASE_URL= DEBUG=true CELERY_TASK_ALWAYS_EAGER=true CACHE_BACKEND=locmem

run: install
	$(RUN_ENV) $(BIN)/python manage.py migrate --no-input
	$(RUN_ENV) $(BIN)/python manage.py demo_data
	$(RUN_ENV) WORKSTREAM_INPROCESS_BEAT=true $(BIN)/python manage.py runserver $(HOST):$(PORT)

# The Debian packages `make test` needs besides Python 3.11 (CI installs them: .ci/run):
#   slapd ldap-utils                           the directory tests start a real OpenLDAP server
#   build-essential libldap2-dev libsasl2-dev  a C compiler and the headers to build python-ldap
#                                              (requirements-ldap.txt; it has no wheel)
#   chromium chromium-driver                   the browser tests (headless Chromium, chromedriver)
#   prometheus                                 promtool, for tests/deploy/ (check config/rules, test
#                                              rules); the server it ships is not used: where apt starts
#                                              it, `systemctl disable --now prometheus` (port 9090)
# Install them with:  sudo apt-get update && sudo apt-get install -y $(make -s test-packages)
# (a Debian-packaged Python 3.11 also needs python3-dev to build python-ldap).
TEST_PACKAGES := slapd ldap-utils build-essential libldap2-dev libsasl2-dev chromium chromium-driver prometheus

test-packages:
	@echo $(TEST_PACKAGES)

# Names what is missing, and how to install it, before anything is built or run.
test-prereqs: | $(BIN)/python
	@missing=""; has() { command -v "$$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$$1" ]; }; \
	has slapd || missing="$$missing slapd"; \
	has ldapadd || missing="$$missing ldap-utils"; \
	has chromium || has chromium-browser || missing="$$missing chromium"; \
	has chromedriver || missing="$$missing chromium-driver"; \
	has promtool || missing="$$missing prometheus"; \
	if ! $(BIN)/python -c "import ldap" 2>/dev/null; then \
	  if ! has cc; then missing="$$missing build-essential"; else \
	    echo '#include <ldap.h>' | cc -E -x c - >/dev/null 2>&1 || missing="$$missing libldap2-dev"; \
	    echo '#include <sasl/sasl.h>' | cc -E -x c - >/dev/null 2>&1 || missing="$$missing libsasl2-dev"; \
	    $(BIN)/python -c "import os, sysconfig as s; assert os.path.isfile(s.get_paths()['include'] + '/Python.h')" \
	      2>/dev/null || missing="$$missing python3-dev"; \
	  fi; \
	fi; \
	node_major=$$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0); \
	if ! has npm || [ "$$node_major" -lt 20 ]; then \
	  echo "make test needs Node.js 20 or later with npm (the TypeScript SDK's tests, sdk-js/):"; \
	  echo "  https://nodejs.org/en/download (Debian 12's own nodejs package is 18)"; \
	  exit 1; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "make test needs these system packages, missing here:$$missing"; \
	  echo "install them (Debian/Ubuntu):  sudo apt-get update && sudo apt-get install -y $(TEST_PACKAGES)"; \
	  exit 1; \
	fi

test: test-prereqs install-dev
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

check: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DATABASE_URL= DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run

lint: install-dev
	$(BIN)/ruff check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .hypothesis
