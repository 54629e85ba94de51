# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by every module that runs host scripts over the task's connection."""

from __future__ import annotations


class ModuleDocFragment:
    # Modules list it before ansible.builtin.action_common_attributes (and its .flow, .conn and .actiongroups), which
    # describe the attributes; this fragment says how the collection's modules support them, and the first fragment
    # to set a value keeps it.
    DOCUMENTATION = r"""
options: {}
notes:
  - This is an action plugin. It runs on the controller and sends static PowerShell scripts over the task's own
    connection, C(ansible.builtin.winrm) or C(ansible.builtin.psrp), as chosen in the inventory. It never opens a
    connection of its own.
  - Every run sends the same short command line; the script and its parameters travel on stdin as JSON data, so no
    command line comes near cmd.exe's limit of 8191 characters and no parameter is ever part of the script's code.
  - Arguments are validated on the controller before the host is contacted; an invalid argument fails the task
    without a round trip.
  - The host work reads registry values, .NET, ADSI and CIM objects only; it does not parse text printed by
    localized tools, so it behaves the same on Swedish, German or English Windows. The scripts need Windows
    PowerShell 5.1, which Windows Server 2016 and newer have.
  - The connection's user needs local administrator rights on the host.
  - When the environment variable E(MAILFLOW_TRANSCRIPT_DIR) is set on the controller, every host-script run that
    reached the host is also written to that directory as one JSON transcript (script name, version and hash, the
    parameters with any password, secret, private key or PFX masked, the exit code, stdout and stderr, the host's
    inventory name, a UTC timestamp and a per-host sequence number). Transcripts from real Windows hosts keep the
    collection's test double honest; see C(tests/transcripts/README.md) in the source repository. A transcript
    that cannot be written is a warning, never a task failure.
attributes:
  action:
    support: full
  action_group:
    support: full
    membership:
      - mailflow.remediation.mailflow
  async:
    support: none
  become:
    support: none
    details: A task with C(become) fails with a clear message; the scripts run as the connection's user.
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Check mode takes the same decision as a real run and writes nothing; it is the collection's audit.
  connection:
    support: full
  delegation:
    support: full
    details: With C(delegate_to), the script runs on the delegated Windows host over its connection.
  diff_mode:
    support: full
    details: Shows the state before and after (predicted, in check mode).
  platform:
    support: full
    platforms: windows
    details: Targets Windows hosts over WinRM or PSRP.
"""
