# Rampart: `make up` runs the whole stack locally, `make test` runs the suite.
# The Makefile bootstraps its own tools: a venv, uv (pinned in requirements.lock), and
# every dependency from requirements.lock. Nothing but Python 3.11+ is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# uv trusts only its bundled roots by default; pip, git and curl trust the system store.
# Behind a TLS-inspecting proxy (its CA in the system store) uv must use the store too.
export UV_SYSTEM_CERTS := 1

.PHONY: install up test test-fast lint bench load soak lock config-docs clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "$$(grep -E '^uv==' requirements.lock)"
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

up: $(STAMP)
	$(BIN)/rampart up

# The suite runs in parallel (pytest-xdist): PYTEST_WORKERS processes, each with its own
# embedded Postgres, Redis and API on free ports (tests/conftest.py), whole modules kept
# on one worker (`--dist loadgroup`), the longest first (LONGEST_FIRST in
# tests/conftest.py). Most of the suite waits on I/O (servers, processes, timeouts), so
# more workers than cores pays off: 4 on a 2-core machine.
PYTEST_WORKERS ?= 4
XDIST := -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder
# Branch coverage of the billing module (webhook verification included) must stay >= 90 %
# (docs/security.md), measured in the main run.
COVERAGE := --cov=rampart.billing --cov-branch --cov-report=term-missing:skip-covered \
	--cov-fail-under=90

# The second run: migrations, core flow, isolation matrix, RLS and docs/supabase.md again,
# on the embedded Postgres shaped like a Supabase project (tests/support/supabase.py).
SUPABASE_TESTS := tests/integration/test_core_flow.py tests/integration/test_tenant_isolation.py \
	tests/integration/test_rls.py tests/integration/test_supabase_shape.py \
	tests/integration/test_supabase_docs.py

# Tests marked `timing` assert wall-clock bounds of concurrency (a 50 ms pool wait, 100
# calls in flight at once): they run alone, after the parallel run, so the suite's own
# workers never starve them of CPU.
test: $(STAMP)
	$(BIN)/ruff check src tests migrations
	$(BIN)/python -m pytest $(XDIST) $(COVERAGE) -m "not timing"
	$(BIN)/python -m pytest -p no:xdist -m timing
	RAMPART_TEST_DB_SHAPE=supabase $(BIN)/python -m pytest -n 2 --dist loadgroup $(SUPABASE_TESTS)

# The inner loop: unit and integration tests without the slow ones (no e2e, chaos, scans,
# fuzzing).
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "(unit or integration) and not slow and not timing"
	$(BIN)/python -m pytest -p no:xdist -m timing

lint: $(STAMP)
	$(BIN)/ruff check src tests migrations

# Security scans and API fuzzing, also run by `make test`: bandit, detect-secrets against
# .secrets.baseline, the dependency audit of requirements.lock (python -m rampart.dep_audit,
# allowlist in vulnerability-allowlist.toml; fails when PyPI cannot be reached), schemathesis.
.PHONY: audit
audit: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration/test_static_scans.py tests/integration/test_schemathesis.py

bench: $(STAMP)
	$(BIN)/python -m bench

# Load and soak tests against the running `make up` stack (docs/load-testing.md). The
# stack must run without per-IP limits (all load comes from one IP):
#   RATE_LIMIT_ENABLED=false MAX_PENDING_BODIES_PER_CLIENT=100000 make up
# Reports: $(RAMPART_HOME)/reports/load/{load,soak}-<UTC stamp>.json (read by readiness).
# Quick runs: LOAD_WEBHOOK_DURATION=5 LOAD_MIXED_DURATION=5 LOAD_FLOOD_JOBS=200 make load;
# SOAK_DURATION=120 make soak.
load: $(STAMP)
	$(BIN)/python -m bench.loadtest load

soak: $(STAMP)
	$(BIN)/python -m bench.loadtest soak

config-docs: $(STAMP)
	$(BIN)/rampart config-docs

# Re-pin every dependency (needs the registry); commit the new requirements.lock.
lock: $(STAMP)
	$(BIN)/uv pip compile -q requirements.in -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) .rampart
