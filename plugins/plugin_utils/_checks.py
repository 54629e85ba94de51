# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of both articles, as the audit module runs them and the drift report shows them.

Private to the mailflow.remediation collection; not a public API and may change without notice.
"""

from __future__ import annotations

import typing as t

# Each check (a module of the collection), in the articles' order, and the hosts it is for by default.
CHECKS: dict[str, tuple[str, ...]] = {
    "w32time": ("exchange_server", "domain_controller"),
    "ad_replication": ("domain_controller",),
    "spn": ("exchange_server",),
    "kerberos_ports": ("exchange_server", "domain_controller"),
    "kerberos_logging": ("exchange_server",),
    "receive_connector_auth": ("exchange_server",),
    "intermediate_ca": ("exchange_server",),
    "smtp_tls_chain": ("exchange_server",),
    "mailflow_evidence": ("exchange_server", "domain_controller"),
}
# Reported, never drift or fixed: KB 979174 step 5 turns Kerberos logging on while troubleshooting only.
DIAGNOSTICS = frozenset({"kerberos_logging"})
ROLES = ("auto", "exchange_server", "domain_controller")


def checks_for(role: str, groups: t.Collection[str]) -> list[str]:
    """The checks for a host of ``role``; ``auto`` is a domain controller when the host is in the group
    ``domain_controllers``, an Exchange server otherwise."""
    if role == "auto":
        role = "domain_controller" if "domain_controllers" in groups else "exchange_server"
    return [name for name, roles in CHECKS.items() if role in roles]
