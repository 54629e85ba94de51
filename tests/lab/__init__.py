"""The lab: a loopback WinRM fleet that stands in for Windows hosts in the tests. It is a test double.

It serves WS-Management on 127.0.0.1 so that Ansible's real connection plugins talk to it as they would to
Windows, recognises the collection's static host scripts by header and hash, and answers each with a Python twin
of that script over a simulated host state. It runs no PowerShell and proves nothing about PowerShell semantics.
"""

import sys
from pathlib import Path

# The lab reads each host script's contract from the collection in this checkout (make setup links it into
# .collections), also when it runs as its own process: python -m tests.lab.
_COLLECTIONS = str(Path(__file__).resolve().parents[2] / ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.append(_COLLECTIONS)
