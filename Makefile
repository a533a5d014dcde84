# pytest-iotemu — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SPEC   ?= scenarios/branch.yaml

.PHONY: demo test deps venv lint bench clean report-tools

# The venv is rebuilt when the package's dependencies change.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

deps:
	./scripts/install-deps.sh

# The HTML report's tools from npm (Allure 3, and playwright-core for the Chromium check),
# pinned in tools/package.json, installed into .tools (never committed).
TOOLS := .tools
$(TOOLS)/.installed: tools/package.json
	mkdir -p $(TOOLS)
	cp tools/package.json $(TOOLS)/package.json
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error
	touch $@

report-tools: $(TOOLS)/.installed

# The main job: the virtual branch up, the fleet bound, the expectations checked, and a
# single-file HTML report (Allure 3), checked in headless Chromium.
RESULTS := reports/allure-results
REPORT  := reports/allure-report
demo: deps venv report-tools
	$(BIN)/iotemu validate $(SPEC)
	rm -rf $(RESULTS) $(REPORT)
	$(BIN)/python -m pytest -p no:cacheprovider --iot-fleet=$(SPEC) -v -rs \
		--iot-metrics=reports/metrics.json --alluredir=$(RESULTS) --iot-pcap=on-failure \
		|| status=$$?; \
	$(TOOLS)/node_modules/.bin/allure awesome $(RESULTS) --single-file -o $(REPORT) \
		--report-name "pytest-iotemu: $(SPEC)" >/dev/null && \
	IOTEMU_TOOLS=$(TOOLS) node scripts/check_report.mjs $(REPORT) "DORA latency" "dhcp[" && \
	echo "report: $(REPORT)/index.html" && exit $${status:-0}

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: venv
	$(BIN)/python benchmarks/protocol_frames.py
	@if [ "$$(id -u)" -eq 0 ]; then $(BIN)/python benchmarks/lab_up.py && \
	  $(BIN)/python benchmarks/dhcp_rate.py --renew && \
	  $(BIN)/python benchmarks/traffic_rate.py; \
	else echo "benchmarks/lab_up.py, dhcp_rate.py and traffic_rate.py skipped: they need root"; fi

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
