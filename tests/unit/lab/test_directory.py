"""Active Directory in the lab refuses what a Windows Server 2012 R2+ DC refuses: an originating write that adds an
SPN another account holds. Duplicates that predate the check, or that two DCs accepted before replicating, load."""

from __future__ import annotations

import typing as t

import pytest

from tests.lab.directory import ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST, SPN_NOT_UNIQUE_TEXT, SpnNotUniqueError
from tests.lab.fleet import Fleet

Document = dict[str, t.Any]
Load = t.Callable[[Document], Fleet]

EX02_SMTPSVC = "SMTPSVC/ex02.contoso.example"


@pytest.mark.parametrize(
    ("account", "add", "spn", "owner"),
    [
        ("svc-relay", [EX02_SMTPSVC], EX02_SMTPSVC, "EX02$"),
        ("svc-relay", ["smtpsvc/EX02.CONTOSO.EXAMPLE"], "smtpsvc/EX02.CONTOSO.EXAMPLE", "EX02$"),  # any case
        ("EX01$", ["HTTP/ex01.contoso.example", "SMTP/EX02"], "SMTP/EX02", "EX02$"),  # one refuses them all
    ],
    ids=["another-account", "other-case", "one-of-several"],
)
def test_a_dc_refuses_an_spn_another_account_holds(
    account: str, add: list[str], spn: str, owner: str, clean_document: Document, load: Load
) -> None:
    clean_document["accounts"] = [{"name": "svc-relay", "kind": "user", "spns": []}]
    directory = load(clean_document).directory
    before = directory.spns("dc01", account)
    with pytest.raises(SpnNotUniqueError) as raised:
        directory.write("dc01", account, add=add, remove=before[:1])
    error = raised.value
    assert (error.win32_error, error.message) == (ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST, SPN_NOT_UNIQUE_TEXT)
    assert (error.dc, error.account, error.spn, error.owner) == ("dc01", account, spn, owner)
    assert directory.spns("dc01", account) == before and not directory.changes


def test_moving_an_spn_is_remove_then_add(clean_document: Document, load: Load) -> None:
    clean_document["accounts"] = [{"name": "svc-relay", "kind": "user", "spns": []}]
    directory = load(clean_document).directory
    assert directory.write("dc01", "EX02$", remove=[EX02_SMTPSVC]) is not None
    assert directory.write("dc01", "svc-relay", add=[EX02_SMTPSVC]) is not None
    assert directory.owners("dc01", EX02_SMTPSVC) == ["svc-relay"]


def test_each_dc_checks_its_own_replica_so_two_dcs_can_still_make_a_duplicate(
    clean_document: Document, load: Load
) -> None:
    clean_document["accounts"] = [{"name": "svc-relay", "kind": "user", "spns": []}]
    directory = load(clean_document).directory
    spn = "HTTP/portal.contoso.example"
    assert directory.write("dc01", "EX01$", add=[spn]) is not None
    assert directory.write("dc02", "svc-relay", add=[spn]) is not None  # dc02 has not seen dc01's write yet
    directory.replicate(force=False)
    assert {dc: sorted(directory.owners(dc, spn)) for dc in directory.dcs} == {
        "dc01": ["EX01$", "svc-relay"],
        "dc02": ["EX01$", "svc-relay"],
    }


def test_a_fleet_file_may_plant_duplicates(clean_document: Document, load: Load) -> None:
    clean_document["accounts"] = [{"name": "svc-old", "kind": "user", "spns": [EX02_SMTPSVC]}]
    clean_document["directory"] = {"pending": [{"dc": "dc02", "account": "svc-old", "add": ["SMTP/EX02"]}]}
    directory = load(clean_document).directory
    assert directory.owners("dc02", EX02_SMTPSVC) == ["EX02$", "svc-old"]
    assert sorted(directory.owners("dc02", "SMTP/EX02")) == ["EX02$", "svc-old"]
