# pytest-iotemu — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SPEC   ?= scenarios/branch.yaml

.PHONY: demo test deps venv lint bench clean

# The venv is rebuilt when the package's dependencies change.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

deps:
	./scripts/install-deps.sh

# The main job: the virtual branch up, the fleet bound, the expectations checked.
demo: deps venv
	$(BIN)/iotemu validate $(SPEC)
	$(BIN)/python -m pytest -p no:cacheprovider --iot-fleet=$(SPEC) -v -rs \
		--iot-metrics=reports/metrics.json

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: venv
	$(BIN)/python benchmarks/protocol_frames.py
	@if [ "$$(id -u)" -eq 0 ]; then $(BIN)/python benchmarks/lab_up.py && \
	  $(BIN)/python benchmarks/dhcp_rate.py --renew; \
	else echo "benchmarks/lab_up.py and dhcp_rate.py skipped: they need root"; fi

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
