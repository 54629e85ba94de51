# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by every module that runs host scripts over the task's connection."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
notes:
  - This is an action plugin. It runs on the controller and sends one static PowerShell script at a time over the
    task's own connection, C(ansible.builtin.winrm) or C(ansible.builtin.psrp), as chosen in the inventory. It never
    opens a connection of its own and takes no credentials as task arguments.
  - Arguments are validated on the controller before the host is contacted; an invalid argument fails the task
    without a round trip.
  - The host work reads registry values, .NET, ADSI and CIM objects only; it does not parse text printed by
    localized tools, so it behaves the same on Swedish, German or English Windows.
  - When the environment variable E(MAILFLOW_TRANSCRIPT_DIR) is set on the controller, every host-script run that
    reached the host is also written to that directory as one JSON transcript (script name, version and hash, the
    parameters with any password, secret, private key or PFX masked, the exit code, stdout and stderr, the host's
    inventory name, a UTC timestamp and a per-host sequence number). Transcripts from real Windows hosts keep the
    collection's test double honest; see C(tests/transcripts/README.md) in the source repository. A transcript
    that cannot be written is a warning, never a task failure.
attributes:
  check_mode:
    support: full
    description: Check mode takes the same decision as a real run and writes nothing; it is the collection's audit.
  diff_mode:
    support: full
    description: Shows the state before and after (predicted, in check mode).
  platform:
    support: full
    platforms: windows
    description: Targets Windows hosts over WinRM or PSRP.
"""
