# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    := out/kerf
KERF   := examples/kerf/lawful.yaml

.PHONY: run test lint install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Check the Kerf demo manifest, publish its documents, then serve the request API on the demo.
run: $(STAMP)
	$(BIN)/lawful check --manifest $(KERF)
	@mkdir -p $(OUT)
	$(BIN)/lawful ropa --manifest $(KERF) --format xlsx -o $(OUT)/ropa.xlsx
	$(BIN)/lawful ropa --manifest $(KERF) --format csv -o $(OUT)/ropa.csv
	$(BIN)/lawful ropa --manifest $(KERF) --format html -o $(OUT)/ropa.html
	$(BIN)/lawful notice --manifest $(KERF) --format md -o $(OUT)/notice.md
	$(BIN)/lawful notice --manifest $(KERF) --format html -o $(OUT)/notice.html
	@echo
	@echo "Kerf's Record of Processing Activities and privacy notice are in $(OUT)/:"
	@ls -1 $(OUT)
	$(BIN)/lawful serve --demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

test: $(STAMP) lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
