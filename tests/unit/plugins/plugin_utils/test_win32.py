"""Win32 error codes as results name them: the number an administrator looks up, with its winerror.h name."""

from __future__ import annotations

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._win32 import hresult, win32_error

# Spelled out here, not read from the table: each line is what a result shows for that code.
NAMED = [
    (5, "5 (ERROR_ACCESS_DENIED)"),
    (1311, "1311 (ERROR_NO_LOGON_SERVERS)"),
    (1396, "1396 (ERROR_WRONG_TARGET_NAME)"),
    (1722, "1722 (RPC_S_SERVER_UNAVAILABLE)"),
    (1727, "1727 (RPC_S_CALL_FAILED_DNE)"),
    (1753, "1753 (EPT_S_NOT_REGISTERED)"),
    (1818, "1818 (RPC_S_CALL_CANCELLED)"),
    (1908, "1908 (ERROR_DOMAIN_CONTROLLER_NOT_FOUND)"),
    (8240, "8240 (ERROR_DS_NO_SUCH_OBJECT)"),
    (8451, "8451 (ERROR_DS_DRA_DB_ERROR)"),
    (8453, "8453 (ERROR_DS_DRA_ACCESS_DENIED)"),
    (8456, "8456 (ERROR_DS_DRA_SOURCE_DISABLED)"),
    (8457, "8457 (ERROR_DS_DRA_SINK_DISABLED)"),
    (8524, "8524 (ERROR_DS_DNS_LOOKUP_FAILURE)"),
    (8606, "8606 (ERROR_DS_INSUFFICIENT_ATTR_TO_CREATE_OBJECT)"),
    (8614, "8614 (ERROR_DS_REPL_LIFETIME_EXCEEDED)"),
    (8647, "8647 (ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST)"),
]


@pytest.mark.parametrize(("code", "shown"), NAMED, ids=[shown for _code, shown in NAMED])
def test_each_common_code_is_shown_with_its_winerror_name(code: int, shown: str) -> None:
    assert win32_error(code) == shown


@pytest.mark.parametrize("code", [0, 6, 1817, 8452, 8458, 8615, 99999])
def test_a_code_outside_the_common_ones_is_shown_as_its_bare_number(code: int) -> None:
    assert win32_error(code) == str(code)


@pytest.mark.parametrize(
    ("code", "shown"), [(-2147016657, "0x8007202F"), (-2147024891, "0x80070005"), (0, "0x00000000"), (5, "0x00000005")]
)
def test_an_hresult_is_written_as_windows_writes_it_in_eight_hex_digits(code: int, shown: str) -> None:
    assert hresult(code) == shown
