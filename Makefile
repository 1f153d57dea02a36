# The two commands a newcomer needs are `make run` and `make test`; the rest are for the team.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAGE ?= dev
ARGS ?=

.PHONY: run test lint format unit bench token synth deploy openapi events-doc clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# (The grep drops pip's warnings about missing local package mirrors some machines configure.)
$(STAMP): requirements.txt requirements-dev.txt requirements-dev-nodeps.txt | $(BIN)/python
	@echo "Installing dependencies into $(VENV) (about a minute the first time)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 \
		| { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		-r requirements-dev-nodeps.txt 2>&1 \
		| { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@touch $(STAMP)

run: $(STAMP) ## Start the whole stack locally (API :8000, AWS :5000, JSM :8081, mailbox :8025)
	$(BIN)/python -m local

test: $(STAMP) lint ## Lint, type-check and run every test (timing tests alone, on a quiet CPU)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not timing"
	$(BIN)/python -m pytest -m timing

lint: $(STAMP) ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app.py chalicelib local infra bench tests

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

token: $(STAMP) ## Print a dev JWT: make token ARGS="--sub u1 --email a@acme.example --company acme --roles project_manager"
	@$(BIN)/python -m local.token $(ARGS)

openapi: $(STAMP) ## Regenerate the committed openapi.json
	$(BIN)/python -c "import json, app; from chalicelib.api.openapi import document; print(json.dumps(document(), indent=2))" > openapi.json

events-doc: $(STAMP) ## Regenerate the event schemas in docs/events.md from chalicelib/domain/events.py
	$(BIN)/python -c "import json, pathlib; from chalicelib.domain.events import EVENT_TYPES, json_schemas; \
	doc = pathlib.Path('docs/events.md'); head = doc.read_text().split('\n## ')[0]; s = json_schemas(); \
	doc.write_text(head + ''.join(f'\n## {c.detail_type()}\n\n{(c.__doc__ or \"\").strip()}\n\n\`\`\`json\n{json.dumps(s[c.detail_type()], indent=2)}\n\`\`\`\n' for c in EVENT_TYPES))"

bench: $(STAMP) ## Measure the figures the issues ask for
	$(BIN)/python -m bench

synth: $(STAMP) ## Package the app + infra into infra/out/template.json (offline)
	$(BIN)/python -m infra.synth --stage $(STAGE)

deploy: $(STAMP) ## Synth + deploy to your AWS account: make deploy STAGE=prod ARGS="--bucket B --parameter JiraUrl=..."
	$(BIN)/python -m infra.deploy --stage $(STAGE) $(ARGS)

clean:
	rm -rf $(VENV) infra/out .pytest_cache .mypy_cache .ruff_cache
