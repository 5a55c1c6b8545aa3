#!/usr/bin/env bash
# llama.cpp's own HTTP server (`llama-server`), built once from the llama.cpp source that the
# llama-cpp-python sdist vendors, and cached under ~/.cache/agentfleet/llama-server-<version>/.
#
#   bash e2e/cluster/llama-server.sh build     # idempotent: prints the binary's path when done
#   bash e2e/cluster/llama-server.sh path      # the binary's path (exit 1 when not built)
#
# Why llama-server and not llama-cpp-python's server: it renders the GGUF's chat template with
# `tools`, accepts a JSON-schema `response_format` (grammar-constrained decoding) and keeps
# working once the history holds `tool` messages (see runtime/agentfleet_runtime/RUNTIME.md).
# The GGML flags: the native build dies with "Illegal instruction" on these CPUs (they advertise
# AMX/AVX-512 that -march=native trips on), so the ISA is spelled out.
# Cold: ~3.5 min to fetch the sdist + ~9 min to compile on 2 cores (measured; see the report).
set -euo pipefail
VERSION="${AGENTFLEET_LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${AGENTFLEET_CACHE:-$HOME/.cache/agentfleet}"
DEST="$CACHE/llama-server-$VERSION"
BIN="$DEST/bin/llama-server"
GGML_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)

case "${1:-build}" in
  path)
    [[ -x "$BIN" ]] || { echo "llama-server not built: run bash e2e/cluster/llama-server.sh build" >&2; exit 1; }
    echo "$BIN"; exit 0 ;;
  build) ;;
  *) echo "usage: $0 build|path" >&2; exit 2 ;;
esac

if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
for tool in cmake make g++; do
  command -v "$tool" >/dev/null || { echo "[llama-server] needs $tool: apt-get install -y cmake build-essential" >&2; exit 1; }
done
mkdir -p "$CACHE"
exec 9>"$CACHE/llama-server.lock"
flock 9
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi   # built by whoever held the lock
WORK="$(mktemp -d "$CACHE/llama-server-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS
echo "[llama-server] fetching the llama-cpp-python $VERSION sdist" >&2
PIP="${PY:-python3} -m pip"
# pip prepares the sdist's metadata in an isolated build environment (most of the ~3.5 min cold);
# AGENTFLEET_LLAMA_SDIST names an already downloaded sdist instead.
if [[ -n "${AGENTFLEET_LLAMA_SDIST:-}" ]]; then
  cp "$AGENTFLEET_LLAMA_SDIST" "$WORK/"
else
  $PIP download -q --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$WORK" >&2
fi
tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
[[ -f "$SRC/CMakeLists.txt" ]] || { echo "[llama-server] no vendored llama.cpp in the sdist at $SRC" >&2; exit 1; }
echo "[llama-server] fetched in $((SECONDS - start)) s; compiling (cold ~9 min on 2 cores)" >&2
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF \
  "${GGML_FLAGS[@]}" >&2
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >&2
mkdir -p "$DEST.tmp/bin"
cp "$WORK/build/bin/llama-server" "$DEST.tmp/bin/"
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"
echo "[llama-server] built in $((SECONDS - start)) s: $BIN" >&2
echo "$BIN"
