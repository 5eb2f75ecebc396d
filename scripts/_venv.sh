# Sourced by scripts/*: make sure .venv exists and holds the project (with dev extras if asked).
# Usage: ensure_venv [dev]
ensure_venv() {
  local extras=${1:-}
  local python=${PYTHON:-}
  if [[ -z "$python" ]]; then
    for candidate in python3.11 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
    done
  fi
  if [[ ! -x .venv/bin/python ]]; then
    echo "creating .venv with $python" >&2
    "$python" -m venv .venv
  fi
  local stamp=.venv/.installed${extras:+-$extras}
  if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    echo "installing the project into .venv${extras:+ (with $extras extras)}" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    if [[ -n "$extras" ]]; then
      .venv/bin/python -m pip install -q -e ".[$extras]"
    else
      .venv/bin/python -m pip install -q -e .
    fi
    touch "$stamp"
  fi
}
