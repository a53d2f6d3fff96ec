# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test install install-dev lint

run: install
	.venv/bin/avocado up

test: install-dev
	scripts/services.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/pytest

install:
	scripts/install.sh

install-dev:
	scripts/install.sh --dev

lint:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .
