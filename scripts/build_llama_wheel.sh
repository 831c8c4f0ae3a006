#!/usr/bin/env bash
# llama-cpp-python has no wheels on PyPI: it compiles llama.cpp from source (about 4 minutes on 2 cores).
# Build its wheel once into a cache folder; every later install (and CI on the same machine) takes seconds.
set -euo pipefail
version="${LLAMA_CPP_VERSION:-0.3.36}"
wheels="${HYBRID_ROUTER_WHEELS:-$HOME/.cache/hybrid-router/wheels}"
python="${1:-python3}"
mkdir -p "$wheels"
if ls "$wheels"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  echo "llama-cpp-python $version: cached wheel in $wheels"
  exit 0
fi
echo "llama-cpp-python $version: building the wheel once (a few minutes; cached in $wheels)"
CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF}" \
  "$python" -m pip wheel --no-deps --quiet -w "$wheels" "llama-cpp-python==$version"
