#!/usr/bin/env bash
# The integration tests against the oldest ansible-core that meta/runtime.yml admits, in .venv-floor.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh
ensure_venv .venv-floor -r requirements/floor.txt
.venv-floor/bin/python -m pytest -q -p no:cacheprovider tests/integration -m integration "$@"
