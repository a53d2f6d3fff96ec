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

# The tests run on the build already installed, or the portable CPU build: never a CUDA build (slow,
# and CI has no GPU); the tests marked gpu skip without one.
install-dev:
	AVOCADO_GPU=cpu scripts/install.sh --dev

lint:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .
