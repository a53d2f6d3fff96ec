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

# The web UI the platform serves at /: built from web/ when Node.js (20.19 or newer) and npm are here
# (npm ci on the committed lockfile, then a static build into web/build). Without them the platform
# serves its API only.
node_ok() {
  command -v npm >/dev/null 2>&1 && node -e '
    const [major, minor] = process.versions.node.split(".").map(Number);
    process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)' 2>/dev/null
}
if node_ok; then
  if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    echo "installing the web UI's packages (npm ci)" >&2
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -f web/build/index.html ] || [ -n "$(find web/src web/static web/package-lock.json web/svelte.config.js web/vite.config.ts -newer web/build/index.html -print -quit)" ]; then
    echo "building the web UI into web/build" >&2
    (cd web && npm run --silent build >/dev/null)
  fi
else
  echo "Node.js 20.19+ and npm not found: the web UI is not built (the platform serves its API only)" >&2
fi
