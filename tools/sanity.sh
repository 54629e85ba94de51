#!/usr/bin/env bash
# ansible-test sanity with empty ignore files, from an ansible_collections/mailflow/remediation copy of the
# tracked tree (ansible-test requires that layout), in its own virtual environment (.venv-sanity).
set -euo pipefail
cd "$(dirname "$0")/.."

. tools/venv.sh
ensure_venv .venv-sanity -r requirements/sanity.txt

# ansible-test skips its shellcheck test when the program is missing; install it so that the gate is real.
if ! command -v shellcheck >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq shellcheck
fi

# ansible-test keeps its virtual environments and caches under ~/.ansible/test. It gets a home of its own inside the
# checkout, so that `make sanity` leaves the user's home directory alone; a pip configuration there still applies.
for pip_config in "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
    if [ -f "$pip_config" ] && [ -z "${PIP_CONFIG_FILE:-}" ]; then
        export PIP_CONFIG_FILE="$pip_config"
    fi
done
sanity_home="$PWD/.venv-sanity/home"
# ansible-test 2.19 bootstraps pip 24.2 into its test environments with a script it downloads from outside the
# package registries; it uses a cached copy when there is one, so ours goes there (see the script's docstring).
mkdir -p "$sanity_home/.ansible/test/cache"
cp tools/ansible_test_pip_bootstrap.py "$sanity_home/.ansible/test/cache/get_pip_24_2.py"

tree=build/sanity/ansible_collections/mailflow/remediation
rm -rf build/sanity
mkdir -p "$tree"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$tree"
git -C "$tree" init -q
git -C "$tree" add -A
(cd "$tree" && HOME="$sanity_home" "$OLDPWD/.venv-sanity/bin/ansible-test" sanity --python 3.11 --color no "$@")
