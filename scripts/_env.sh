# Shared by scripts/serve, scripts/test and scripts/bench: make .venv with Python 3.11+ and install
# Promo with exact pins. Re-installs only when pyproject.toml or the constraints change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The environment's folder: .venv unless PROMO_VENV names another (CI's runtime-only start
# check, tests/system/test_fresh_install.py, builds one elsewhere with scripts/serve).
VENV="${PROMO_VENV:-.venv}"

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Promo needs Python 3.11 or newer on PATH (or set PYTHON=...)" >&2
  return 1
}

ensure_env() {  # $1: extras, e.g. "dev" or ""
  local extras="$1" spec="." stamp
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x "$VENV/bin/python" ]; then
    "$(find_python)" -m venv "$VENV"
  fi
  stamp="$(cat pyproject.toml requirements/constraints.txt | "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')-$extras"
  if [ "$(cat "$VENV/.promo-installed" 2>/dev/null)" != "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e "$spec"
    echo "$stamp" > "$VENV/.promo-installed"
  fi
}

ensure_debian_tool() {  # $1: command, $2: Debian package; installed with apt-get when root
  command -v "$1" >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's $2 for $1" >&2
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2"; } >/dev/null 2>&1 && return 0
  fi
  echo "$1 is missing: apt-get install $2" >&2
  return 1
}
