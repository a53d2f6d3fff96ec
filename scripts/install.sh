#!/usr/bin/env bash
# Installs Avocado into .venv in the repository root.  Usage: scripts/install.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python 3.11 or newer is required (found $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip

# llama-cpp-python compiles llama.cpp. A native build (-march=native) crashes on CPUs that
# advertise AMX (ggml_backend_amx_mul_mat); a portable AVX2 build works everywhere we run.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"

target="."
[ "${1:-}" = "--dev" ] && target=".[dev]"
echo "installing $target into .venv (the first install compiles llama.cpp: a few minutes)" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
