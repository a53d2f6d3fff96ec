#!/usr/bin/env bash
# Packs what bench/gpu_device.sh needs on the lent GPU machine (no network there, 64 MiB carried):
# llama-cpp-python's Python package with the CUDA libraries bench/gpu_build.sh built, llama-bench
# and llama-server beside them, and wheels of this project's dependencies that the machine's
# Python lacks. Output: .gpu-build/kit.tar.xz (git-ignored), carried with the run tool.
#
# Usage: bench/gpu_kit.sh [ARCH] [PYTHON_VERSION]   (defaults 90 and 3.12, the lent machine's)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-90}
python_version=${2:-3.12}
work=.gpu-build
src=$work/src/llama_cpp_python-0.3.36
build=$work/build-sm$arch
kit=$work/kit
rm -rf "$kit" && mkdir -p "$kit/site" "$kit/wheels"

# llama_cpp loads libllama.so (and libggml.so) from its own lib/ folder; the tools find the same
# libraries there through their $ORIGIN run path.
cp -r "$src/llama_cpp" "$kit/site/llama_cpp"
lib=$kit/site/llama_cpp/lib
mkdir -p "$lib"
cp -P "$build"/bin/lib*.so* "$lib/"
cp "$build/bin/llama-bench" "$build/bin/llama-server" "$lib/"
strip --strip-unneeded "$lib"/lib*.so.*.* "$lib/llama-bench" "$lib/llama-server" 2>/dev/null || true
# The CPU backend's OpenMP runtime, in case the machine lacks it ($ORIGIN is searched first).
cp -L "$(gcc -print-file-name=libgomp.so.1)" "$lib/libgomp.so.1"
find "$kit/site" -name __pycache__ -prune -exec rm -rf {} +

# The project's dependencies at the versions this venv resolved, as wheels for the machine's
# Python; the machine has numpy, httpx, jinja2, yarl, uvloop and pytest's own dependencies.
wanted="aio-pika aiormq pamqp annotated-types annotated-doc diskcache fastapi starlette gguf httptools
pydantic pydantic_core pydantic-settings python-dotenv typing-inspection typing_extensions uvicorn typer
rich click shellingham anyio pytest pluggy iniconfig pytest-timeout"
pins=$(.venv/bin/python -m pip freeze 2>/dev/null)
for name in $wanted; do
  pin=$(echo "$pins" | grep -i "^${name//[-_]/[-_]}==" || true)
  [ -n "$pin" ] || { echo "$name is not installed in .venv" >&2; exit 1; }
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python_version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$kit/wheels" "$pin" 2>/dev/null \
    || { echo "no wheel of $pin for Python $python_version" >&2; exit 1; }
done

XZ_OPT=-9e tar -C "$kit" -cJf "$work/kit.tar.xz" site wheels  # xz: the host code packs well, the fatbins are packed already
du -sh "$lib" "$kit/wheels" "$work/kit.tar.xz" >&2
