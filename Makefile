# ScanPath: bootstrap, run, lint, test and benchmark.
# `make run` and `make test` work on a fresh machine (README, "Quick start").

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.scanpath-installed
NODE_STAMP := node_modules/.scanpath-installed
STATIC_STAMP := static/.scanpath-built
NHSUK := node_modules/nhsuk-frontend/dist/nhsuk
PYTEST_ARGS ?=

# PostgreSQL runs on every machine of this project; the suite's postgres tests use it
# (and must not skip under CI=true).
export SCANPATH_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: help venv .venv node_modules static system-deps migrate seed run lint test bench

help:
	@echo "make run          bootstrap .venv, migrate, seed, serve on http://$${SCANPATH_HOST:-127.0.0.1}:$${SCANPATH_PORT:-8080}"
	@echo "                  (DICOM listener on port $${SCANPATH_DICOM_PORT:-11112}; set SCANPATH_PORT etc. to change)"
	@echo "make test         bootstrap (.venv, node_modules, system packages), lint, pytest"
	@echo "                  (PYTEST_ARGS='-k name -x' passes options to pytest)"
	@echo "make lint         ruff and mypy"
	@echo "make static       copy nhsuk-frontend's CSS, JS and assets into static/nhsuk/ and bundle the"
	@echo "                  image viewer (Cornerstone3D, model-viewer) into static/viewer/ and the patient"
	@echo "                  page's model-viewer into static/patient/ (served at /static)"
	@echo "make migrate      upgrade the database to the latest migration"
	@echo "make seed         migrate, then load the demo clients and rule packs"
	@echo "make bench        run every bench/*.py (but _*.py helpers)"
	@echo "make system-deps  apt-get install dcmtk, chromium, orthanc... when missing (root only)"

# --- bootstrap -------------------------------------------------------------------

venv .venv: $(VENV_STAMP)

# editable_mode=compat puts the project root on sys.path through a .pth file, so the
# project's own `fhir` package can extend the `fhir` package of fhir.resources
# (see core/__init__.py). The stamp reinstalls whenever pyproject.toml changes.
$(VENV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -U pip
	$(BIN)/pip install --config-settings editable_mode=compat -e '.[dev]'
	cd /tmp && $(CURDIR)/$(BIN)/python -c "import core, fhir.resources.R4B, importlib.util as u; \
		assert u.find_spec('fhir.registry'), 'project fhir/ is not on fhir.__path__'"
	touch $@

node_modules: $(NODE_STAMP)

$(NODE_STAMP): package.json $(wildcard package-lock.json)
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; \
	else npm install --no-audit --no-fund; fi
	touch $@

# The staff web app's look: nhsuk-frontend from npm, served by Flask at /static/nhsuk/
# (never from a CDN). static/ is built, not committed. The stylesheet's @font-face rules
# load Frutiger from assets.nhs.uk, which the staff CSP refuses: they are dropped, and
# the NHS font stack falls back to Arial as NHS.UK itself does without Frutiger.
static: $(STATIC_STAMP)

$(STATIC_STAMP): $(NODE_STAMP)
	rm -rf static/nhsuk
	mkdir -p static/nhsuk
	perl -0pe 's/\@font-face\{[^}]*assets\.nhs\.uk[^}]*\}//g' \
		$(NHSUK)/nhsuk-frontend.min.css > static/nhsuk/nhsuk-frontend.min.css
	! grep -q 'assets\.nhs\.uk' static/nhsuk/nhsuk-frontend.min.css
	cp $(NHSUK)/nhsuk-frontend.min.js static/nhsuk/
	cp -r $(NHSUK)/assets static/nhsuk/assets
	touch $@

# dcmtk (storescu, findscu), Chromium and Orthanc (the PACS results are sent to; the
# tests start their own, never the package's service) are real peers for the tests.
system-deps:
	@missing=""; \
	command -v storescu >/dev/null || missing="$$missing dcmtk"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v dciodvfy >/dev/null || missing="$$missing dicom3tools"; \
	command -v pdftotext >/dev/null || missing="$$missing poppler-utils"; \
	command -v Orthanc >/dev/null || test -x /usr/sbin/Orthanc || missing="$$missing orthanc"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing:$$missing"; \
		apt-get update; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y$$missing; \
	else \
		echo "warning: missing system packages:$$missing (not root: not installing;" \
			"tests that need them will fail or skip)" >&2; \
	fi

# The staff image viewer (imaging_core/viewer/): Cornerstone3D and model-viewer from npm,
# bundled by esbuild into static/viewer/ (served at /static/viewer/, never from a CDN).
# The DICOM image loader decodes in a Web Worker it finds beside the bundle
# (new URL('./decodeImageFrameWorker.js', import.meta.url)), so that is a second entry
# point. Node built-ins its codecs touch only under Node stay external; two that vtk.js's
# XML dependency requires on load get browser stand-ins (imaging_core/viewer/shims/).
VIEWER_STAMP := static/viewer/.scanpath-built
VIEWER_SOURCES := $(wildcard imaging_core/viewer/*.js imaging_core/viewer/*.css imaging_core/viewer/shims/*.js)
VIEWER_ENTRIES := imaging_core/viewer/viewer.js imaging_core/viewer/viewer.css \
	imaging_core/viewer/model.js \
	node_modules/@cornerstonejs/dicom-image-loader/dist/esm/decodeImageFrameWorker.js
NODE_BUILTINS := fs path crypto module worker_threads stream util buffer

static: $(VIEWER_STAMP)

$(VIEWER_STAMP): $(NODE_STAMP) $(VIEWER_SOURCES)
	rm -rf static/viewer
	node_modules/.bin/esbuild $(VIEWER_ENTRIES) --bundle --format=esm --minify \
		--entry-names='[name]' --outdir=static/viewer --log-level=warning \
		$(addprefix --external:,$(NODE_BUILTINS)) \
		--alias:url=./imaging_core/viewer/shims/url.js \
		--alias:events=./imaging_core/viewer/shims/events.js
	touch $@

# The patient report page's own bundle (patient/web/): model-viewer for the 3D heart model
# and the page's stylesheet, into static/patient/ (served at /static/patient/, no CDN).
PATIENT_STAMP := static/patient/.scanpath-built
PATIENT_SOURCES := $(wildcard patient/web/*.js patient/web/*.css)

static: $(PATIENT_STAMP)

$(PATIENT_STAMP): $(NODE_STAMP) $(PATIENT_SOURCES)
	rm -rf static/patient
	node_modules/.bin/esbuild $(PATIENT_SOURCES) --bundle --format=esm --minify \
		--entry-names='[name]' --outdir=static/patient --log-level=warning
	touch $@

# --- running ---------------------------------------------------------------------

migrate: venv
	$(BIN)/scanpath db upgrade

seed: migrate
	$(BIN)/scanpath seed

run: seed static
	$(BIN)/scanpath serve

# --- checking --------------------------------------------------------------------

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy core auth fhir referral rules imaging_core patient scanpath wsgi.py

test: venv node_modules static system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	@shopt -s nullglob; benches=(bench/*.py); \
	if [ $${#benches[@]} -eq 0 ]; then echo "no benchmarks in bench/"; exit 0; fi; \
	for b in "$${benches[@]}"; do \
		case "$$(basename "$$b")" in _*) continue ;; esac; \
		echo "== $$b"; $(BIN)/python "$$b"; \
	done
