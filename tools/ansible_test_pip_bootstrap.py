"""Offline stand-in for the get-pip.py that ansible-test downloads to put pip into its sanity environments.

ansible-test fetches that script from a host outside the package registries, which our machines cannot reach.
It looks for a cached copy first, so `make sanity` places this file there: it installs the pip that ships with
Python (ensurepip, no network) and then lets that pip install what ansible-test asked for from the package index.
"""

from __future__ import annotations

import subprocess
import sys

# get-pip.py takes these two switches; pip itself does not.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

if __name__ == "__main__":
    # In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null for its own run, and the pip below must
    # see the machine's pip configuration (index, certificates).
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    arguments = [argument for argument in sys.argv[1:] if argument not in GET_PIP_ONLY]
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *arguments]))
