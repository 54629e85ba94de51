# shellcheck shell=bash
# Sourced by the tools/ scripts: ensure_venv DIR [pip install arguments...] creates a virtual environment in DIR
# and installs into it, unless DIR/.installed is newer than every requirements file; PYTHON picks the interpreter.

ensure_venv() {
    local dir=$1
    shift
    local stamp="$dir/.installed"
    if [ -f "$stamp" ] && [ -z "$(find requirements -newer "$stamp" -print -quit)" ]; then
        return 0
    fi
    rm -rf "$dir"
    "${PYTHON:-python3}" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet "$@"
    touch "$stamp"
}
