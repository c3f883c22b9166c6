# Sourced by bin/steadyswap and bin/test after they set `need` (the extras their command needs, comma-separated,
# empty for a plain run): create the venv on first use, keep it in step with pyproject.toml, and add an extra the
# first time a command needs it. STEADYSWAP_EXTRAS names more extras to install (CI: gpu); STEADYSWAP_VENV moves
# the venv (default .venv). pip's own output is shown only when an install fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STEADYSWAP_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "steadyswap needs Python 3.11 or newer (found: $("$py" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

# The stamp holds the checksum of the pyproject.toml last installed and the extras installed with it.
stamp="$venv/.steadyswap-installed"
checksum="$(cksum < "$root/pyproject.toml" | cut -d' ' -f1)"
have_checksum="" have_extras=""
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ]; then
  read -r have_checksum have_extras < "$stamp" || true
fi
# Extras are only ever added: a venv set up for the tests keeps them when a plain run uses it.
extras="$(printf '%s\n' "$need" "${STEADYSWAP_EXTRAS:-}" "$have_extras" | tr ', ' '\n\n' | sed '/^$/d' | sort -u \
  | paste -sd, -)"
if [ "$have_checksum" != "$checksum" ] || [ "$have_extras" != "$extras" ]; then
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
  echo "steadyswap: installing steadyswap${extras:+[$extras]} into $venv (from PyPI)..." >&2
  if ! {
    { [ -x "$venv/bin/python" ] || { "$py" -m venv "$venv" && "$venv/bin/python" -m pip install --upgrade pip; }; } &&
      "$venv/bin/python" -m pip install --disable-pip-version-check -e "$root${extras:+[$extras]}"
  } > "$log" 2>&1; then
    cat "$log" >&2
    echo "steadyswap: the install failed (pip's output above); fix the cause and run the command again" >&2
    exit 1
  fi
  echo "$checksum $extras" > "$stamp"
  rm -f "$log"
  trap - EXIT
fi
