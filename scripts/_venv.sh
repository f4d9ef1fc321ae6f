# Sourced by the other scripts: create .venv if needed and install the project into it.
# Usage: . scripts/_venv.sh [EXTRAS]   (EXTRAS e.g. "dev"; empty for the runtime only)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
spec="."
if [ -n "${1:-}" ]; then spec=".[$1]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
export PATH="$ROOT/.venv/bin:$PATH"
