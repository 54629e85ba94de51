# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Win32 error codes as administrators look them up: the number and its winerror.h name.

Private to the mailflow.remediation collection; not a public API and may change without notice.

Windows' own text for an error is localized, so the host scripts return codes, and results name them from here.
"""

from __future__ import annotations

# The codes AD replication and SPN writes report most (repadmin /showrepl and the DC's event log show the same).
WIN32_ERRORS = {
    5: "ERROR_ACCESS_DENIED",
    1311: "ERROR_NO_LOGON_SERVERS",
    1396: "ERROR_WRONG_TARGET_NAME",
    1722: "RPC_S_SERVER_UNAVAILABLE",
    1727: "RPC_S_CALL_FAILED_DNE",
    1753: "EPT_S_NOT_REGISTERED",
    1818: "RPC_S_CALL_CANCELLED",
    1908: "ERROR_DOMAIN_CONTROLLER_NOT_FOUND",
    8240: "ERROR_DS_NO_SUCH_OBJECT",
    8451: "ERROR_DS_DRA_DB_ERROR",
    8453: "ERROR_DS_DRA_ACCESS_DENIED",
    8456: "ERROR_DS_DRA_SOURCE_DISABLED",
    8457: "ERROR_DS_DRA_SINK_DISABLED",
    8524: "ERROR_DS_DNS_LOOKUP_FAILURE",
    8606: "ERROR_DS_INSUFFICIENT_ATTR_TO_CREATE_OBJECT",
    8614: "ERROR_DS_REPL_LIFETIME_EXCEEDED",
    8647: "ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST",
}


def win32_error(code: int) -> str:
    """``1722 (RPC_S_SERVER_UNAVAILABLE)``, or the bare number when it is not one of the common ones."""
    name = WIN32_ERRORS.get(code)
    return f"{code} ({name})" if name else str(code)


def hresult(code: int) -> str:
    """An HRESULT as Windows writes it, 0x8007202F (scripts return it as a signed 32-bit number)."""
    return f"0x{code & 0xFFFFFFFF:08X}"
