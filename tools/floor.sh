#!/usr/bin/env bash
# The integration tests against the oldest ansible-core that meta/runtime.yml admits, in .venv-floor.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv-floor/.installed
if [ ! -f "$stamp" ] || [ requirements/floor.txt -nt "$stamp" ]; then
    rm -rf .venv-floor
    "$PYTHON" -m venv .venv-floor
    .venv-floor/bin/python -m pip install --quiet -r requirements/floor.txt
    touch "$stamp"
fi
.venv-floor/bin/python -m pytest -q -p no:cacheprovider tests/integration -m integration "$@"
