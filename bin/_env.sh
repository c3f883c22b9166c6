# Sourced by bin/steadyswap and bin/test: create .venv on first use and keep it in step with pyproject.toml.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STEADYSWAP_VENV:-$root/.venv}"
extras="${STEADYSWAP_EXTRAS:-test,distributed,ui}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "steadyswap needs Python 3.11 or newer (found: $("$py" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
stamp="$venv/.steadyswap-installed"
want="$(cat "$root/pyproject.toml" | cksum | cut -d' ' -f1)-$extras"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $venv (first run only; downloads the dependencies from PyPI)..." >&2
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -e "$root[$extras]" >&2
  echo "$want" > "$stamp"
fi
