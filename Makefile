# sew-fairseq: `make demo` and `make test` are all a user types on a fresh machine;
# both run `make setup` first, which is idempotent (it redoes nothing once .venv is complete).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# torch first, pinned: on these machines torch==2.13.0 is a CPU wheel on local disk, while an
# unpinned requirement pulls a multi-GB CUDA build. Override with `make setup TORCH=torch==X`.
TORCH  ?= torch==2.13.0
FAIRSEQ := $(shell $(PYTHON) -c 'import sys; print("fairseq-fixed==0.12.3.1" if sys.version_info >= (3, 11) else "fairseq==0.12.2")')
STAMP  := $(VENV)/.setup-done

.PHONY: setup test demo bench clean

setup: $(STAMP)

$(STAMP): setup.py requirements.txt requirements-test.txt Makefile pyproject.toml
	# NIST SCTK (sclite, csrfilt.sh) for Switchboard/Hub5 scoring; Debian installs it in /usr/lib/sctk/bin.
	# Without it (not root, not Debian) the sclite tests are skipped and Hub5 scoring is unavailable.
	command -v sclite >/dev/null || test -x /usr/lib/sctk/bin/sclite || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends sctk) || \
	  echo "warning: could not install SCTK (apt-get install sctk); sclite scoring will be unavailable"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip setuptools wheel
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -r requirements.txt -r requirements-test.txt
	$(PIP) install -q --no-deps pyctcdecode==0.5.0
	# fairseq compiles Cython/C++ extensions against the torch and numpy already here
	# (--no-build-isolation), and its torchaudio requirement is left out (--no-deps): see requirements.txt.
	$(PIP) show -q fairseq-fixed fairseq >/dev/null 2>&1 || $(PIP) install -q --no-build-isolation --no-deps "$(FAIRSEQ)"
	$(PIP) install -q --no-build-isolation --no-deps -e .
	# a torchaudio that does not match torch fails at import and breaks transformers: keep it out
	-$(PIP) uninstall -q -y torchaudio 2>/dev/null
	$(PY) -c "import fairseq, sew_fairseq, flashlight.lib.text.decoder; print('setup ok: fairseq', fairseq.__version__)"
	touch $(STAMP)

test: setup
	$(VENV)/bin/ruff check sew_fairseq manifests tests
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q tests

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash recipes/demo.sh

bench: setup
	$(VENV)/bin/sew-bench speed --presets sew_d_mid sew_tiny --seconds 10

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
