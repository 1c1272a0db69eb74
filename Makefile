# The two commands of the README: `make report` (the main job) and `make test`.
# Both set up what they need: the virtual environment, the project with its extras, and the
# Debian packages (the Fashion-MNIST data; Chromium for the browser test).

PYTHON ?= python3
VENV   ?= .venv
EXTRAS ?= cpu,dev
# `make report EXTRAS=gpu,dev` installs onnxruntime-gpu instead (never both: they conflict).
BIN    := $(VENV)/bin
DATA   := /usr/share/datasets/fashion-mnist
comma  := ,
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CODE   := latent_atlas toolkit export analysis

.PHONY: install data browser report train test lint clean vendor-ortweb

$(BIN)/.installed-$(subst $(comma),-,$(EXTRAS)): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# onnxruntime and onnxruntime-gpu share the module `onnxruntime`: switching extras
	@# removes both before installing the one asked for.
	@other=$(if $(findstring gpu,$(EXTRAS)),onnxruntime,onnxruntime-gpu); \
	if $(BIN)/pip show -q $$other 2>/dev/null; then $(BIN)/pip uninstall -y -q onnxruntime onnxruntime-gpu; fi
	@# setuptools warns once per data folder under artifacts/ that it is not a package (it is
	@# package data, on purpose): ~160 lines of noise a new user would read as a failure
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

install: $(BIN)/.installed-$(subst $(comma),-,$(EXTRAS))

data:
	@if [ -z "$$LATENT_ATLAS_DATA" ] && [ ! -e $(DATA)/t10k-labels-idx1-ubyte.gz ]; then \
		echo "installing Debian package dataset-fashion-mnist"; \
		$(SUDO) apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }; \
	fi

browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian package chromium (browser test)"; \
		$(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium; }; \
	fi

report: install data
	$(BIN)/latent-atlas report

train: install data
	$(BIN)/latent-atlas train

# mypy cannot follow setuptools' package-dir mapping: it checks a tree of links laid out as
# the installed package (latent_atlas/{toolkit,export,analysis} -> the repository's folders).
TYPECHECK := build/typecheck

lint: install
	$(BIN)/ruff check $(CODE) tests benchmarks
	$(BIN)/ruff format --check $(CODE) tests benchmarks
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/latent_atlas
	@for f in latent_atlas/*.py latent_atlas/commands; do ln -s "$(CURDIR)/$$f" $(TYPECHECK)/latent_atlas/; done
	@for d in toolkit export analysis artifacts; do ln -s "$(CURDIR)/$$d" $(TYPECHECK)/latent_atlas/$$d; done
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml \
		--cache-dir $(CURDIR)/.mypy_cache -p latent_atlas

# The suite on every core (pytest-xdist; tests/conftest.py says how to keep a test fast and safe
# there). `make test JOBS=0` runs it in one process; the ten slowest tests are listed at the end.
JOBS ?= auto
test: install data browser lint
	$(BIN)/pytest -q -n $(JOBS) --dist loadgroup --durations=10

# Maintainers only (needs npm): fetch the pinned onnxruntime-web from npm again, check the
# tarball's npm integrity and every file's sha256, and refresh latent_atlas/vendor/. Nothing
# else needs npm: the files are vendored, so tests, CI and wheel builds run offline.
ORTWEB_VERSION := $(shell sed -n 's/^VERSION = "\(.*\)"/\1/p' latent_atlas/ortweb.py)
vendor-ortweb: install
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent onnxruntime-web@$(ORTWEB_VERSION) >/dev/null) && \
	$(BIN)/python -c "import sys; from latent_atlas import ortweb; ortweb.vendor(sys.argv[1])" \
		"$$tmp/onnxruntime-web-$(ORTWEB_VERSION).tgz" && \
	echo "onnxruntime-web $(ORTWEB_VERSION): vendored files match their pinned sha256"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
