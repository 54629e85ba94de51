"""Fleet-level checks: what no single host can judge, from the cells of every host."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._fleet_checks import (
    Names,
    clock_spread,
    duplicate_spns,
    failing_partners,
    fleet_checks,
)

DOMAIN = "contoso.example"


def offsets(**seconds: float | None) -> list[dict[str, t.Any]]:
    """w32time's offsets: how far the host's clock is ahead of each peer (None: the peer did not answer)."""
    return [
        {"peer": f"{peer}.{DOMAIN}", "answered": value is not None, "offset": value, "error": None}
        for peer, value in seconds.items()
    ]


def w32time(host: str, status: str = "ok", *, check_mode: bool = True, **seconds: float | None) -> dict[str, t.Any]:
    measured = offsets(**seconds)
    return {
        "host": host,
        "check": "w32time",
        "status": status,
        "check_mode": check_mode,
        # w32time measures the domain's DCs, and names them
        "evidence": {
            "offsets": measured,
            "offsets_before": measured,
            "domain_controllers": [entry["peer"] for entry in measured],
        },
    }


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            # contoso: ex03 is 420 s ahead; dc02 (its W32Time stopped, so nobody measures it) is 40 s behind dc01.
            [
                w32time("ex01", dc01=0.0, dc02=None, dc03=0.0),
                w32time("ex03", "drift", dc01=420.0, dc03=420.0, dc02=None),
                w32time("dc01", dc02=None, dc03=0.0),
                w32time("dc02", "drift", dc01=-40.0, dc03=-40.0),
            ],
            ("drift", 460.0, "ex03", "dc02"),
            id="contoso: 460 s between ex03 and dc02, which nobody measured against each other",
        ),
        pytest.param(
            # Each Exchange server is within 300 s of its DC, so w32time finds nothing on either; they are 400 s apart.
            [w32time("ex01", dc01=200.0), w32time("ex02", dc01=-200.0)],
            ("drift", 400.0, "ex01", "ex02"),
            id="two hosts within the limit of their DC, beyond it of each other",
        ),
        pytest.param(
            [w32time("ex01", dc01=100.0), w32time("ex02", dc01=-100.0), w32time("dc01", dc02=0.5)],
            ("ok", 200.0, "ex01", "ex02"),
            id="within 300 s",
        ),
        pytest.param(
            [w32time("ex01", dc01=None), w32time("ex02", "failed")],
            ("unknown", None, None, None),
            id="nothing measured",
        ),
        pytest.param(
            # A failed or unreachable w32time cell has no measurement to trust.
            [w32time("ex01", dc01=0.0), w32time("ex02", "unreachable", dc01=900.0)],
            ("ok", 0.0, "ex01", "dc01.contoso.example"),
            id="an unreachable host's stale offsets are not used",
        ),
    ],
)
def test_clock_spread_places_every_clock_on_one_line(
    cells: list[dict[str, t.Any]], expected: tuple[t.Any, ...]
) -> None:
    result = clock_spread(cells)
    assert (result["status"], result["spread"], result["ahead"], result["behind"]) == expected


def test_clock_spread_names_the_two_clocks_and_the_article() -> None:
    result = clock_spread([w32time("ex01", dc01=200.0), w32time("ex02", dc01=-200.0)], limit=300)
    assert result["findings"] == [
        "the clocks of ex01 and ex02 are 400 s apart, more than 300 s: Kerberos fails between them "
        "(KB 979174 step 1: all clocks within 5 minutes of each other)"
    ]
    assert result["clocks"] == {"dc01.contoso.example": 0.0, "ex01": 200.0, "ex02": -200.0}


def test_clock_spread_takes_the_state_as_found_in_check_mode_and_after_the_fix_in_a_real_run() -> None:
    before, after = offsets(dc01=420.0), offsets(dc01=0.1)
    audited = {"host": "ex03", "check": "w32time", "status": "drift", "check_mode": True}
    fixed = {**audited, "status": "fixed", "check_mode": False}
    evidence = {"offsets": after, "offsets_before": before}
    assert clock_spread([{**audited, "evidence": evidence}, w32time("ex01", dc01=0.0)])["spread"] == 420.0
    assert clock_spread([{**fixed, "evidence": evidence}, w32time("ex01", dc01=0.0)])["spread"] == 0.1


def test_clocks_that_no_measurement_links_are_judged_apart_and_said_so() -> None:
    cells = [w32time("ex01", dc01=10.0), w32time("ex02", dc09=-500.0)]
    result = clock_spread(cells)
    assert (result["status"], result["spread"], result["groups"]) == ("drift", 500.0, 2)
    assert result["not_compared"] == ["dc09.contoso.example", "ex02"]


def test_the_chart_places_the_clocks_of_the_largest_linked_group_around_its_reference() -> None:
    # dc01, ex01 and ex03 are linked by measurements; ex02 and dc09 only to each other: the larger group is charted.
    cells = [w32time("ex01", dc01=10.0), w32time("ex03", dc01=-20.0), w32time("ex02", dc09=-500.0)]
    result = clock_spread(cells)
    assert (result["reference"], result["clocks"]) == (
        "dc01.contoso.example",
        {"dc01.contoso.example": 0.0, "ex01": 10.0, "ex03": -20.0},
    )


def test_the_limit_is_the_callers() -> None:
    cells = [w32time("ex01", dc01=200.0), w32time("ex02", dc01=-200.0)]
    assert clock_spread(cells, limit=600)["status"] == "ok"
    assert fleet_checks(cells, max_clock_spread=399)["clock_spread"]["status"] == "drift"


@pytest.mark.parametrize(
    ("hosts", "name", "expected"),
    [
        (["ex01", "dc01"], "DC01.contoso.example", "dc01"),
        (["ex01.contoso.example"], "EX01.CONTOSO.EXAMPLE", "ex01.contoso.example"),
        (["ex01.contoso.example"], "ex01", "ex01.contoso.example"),
        # Two inventory hosts with the same first label: the name stays as it is rather than pick one.
        (["ex01.a.example", "ex01.b.example"], "ex01.c.example", "ex01.c.example"),
        (["ex01"], "time.lab.example", "time.lab.example"),
    ],
)
def test_peers_are_named_as_the_inventory_names_them(hosts: list[str], name: str, expected: str) -> None:
    assert Names(hosts)(name) == expected


def spn(
    host: str,
    dc: str,
    owners: dict[str, list[str]],
    *,
    added: dict[str, list[str]] | None = None,
    removed: dict[str, list[str]] | None = None,
    check_mode: bool = True,
    status: str = "ok",
) -> dict[str, t.Any]:
    evidence = {"dc": dc, "owners": owners, "added": added or {}, "removed": removed or {}}
    return {"host": host, "check": "spn", "status": status, "check_mode": check_mode, "evidence": evidence}


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            [spn("ex01", "dc01", {"SMTPSVC/ex01.contoso.example": ["EX01$", "svc-mailrelay"]})],
            {"SMTPSVC/ex01.contoso.example": ["EX01$", "svc-mailrelay"]},
            id="two owners in one DC's view",
        ),
        pytest.param(
            # dc01 holds the SPN on EX02$, dc03 (not replicated yet) on a service account: each view has one owner.
            [
                spn("ex02", "dc01", {"SMTPSVC/ex02.contoso.example": ["EX02$"]}),
                spn("ex03", "dc03", {"smtpsvc/EX02.contoso.example": ["svc-old"]}),
            ],
            {"SMTPSVC/ex02.contoso.example": ["EX02$", "svc-old"]},
            id="one owner in each of two views, two in the fleet",
        ),
        pytest.param(
            # In check mode 'owners' is what a run would leave: SMTP/EX03 would be added, so it has no owner yet.
            [spn("ex03", "dc03", {"SMTP/EX03": ["EX03$"]}, added={"EX03$": ["SMTP/EX03"]})],
            {},
            id="what a run would add is not there yet",
        ),
        pytest.param(
            # Two owners after the run, but one of them only because the run would add it: no duplicate as found.
            [spn("ex03", "dc03", {"SMTP/EX03": ["svc-old", "EX03$"]}, added={"EX03$": ["SMTP/EX03"]})],
            {},
            id="an owner a run would add does not make a duplicate yet",
        ),
        pytest.param(
            # ... and what it would remove is still there.
            [spn("ex01", "dc01", {"SMTPSVC/ex01": ["EX01$"]}, removed={"svc-mailrelay": ["SMTPSVC/ex01"]})],
            {"SMTPSVC/ex01": ["EX01$", "svc-mailrelay"]},
            id="what a run would remove is still there",
        ),
        pytest.param(
            [
                spn(
                    "ex01",
                    "dc01",
                    {"SMTPSVC/ex01": ["EX01$"]},
                    removed={"svc-mailrelay": ["SMTPSVC/ex01"]},
                    check_mode=False,
                )
            ],
            {},
            id="after a real run, the removed owner is gone",
        ),
        pytest.param(
            [spn("ex01", "dc01", {"SMTPSVC/ex01": ["EX01$", "svc"]}, status="failed")],
            {},
            id="a failed check's owners are not used",
        ),
    ],
)
def test_duplicate_spns_across_every_view(cells: list[dict[str, t.Any]], expected: dict[str, list[str]]) -> None:
    result = duplicate_spns(cells)
    assert result["duplicates"] == expected
    assert len(result["findings"]) == len(expected)
    if cells[0]["status"] == "failed":
        assert result["status"] == "unknown"
    else:
        assert result["status"] == ("drift" if expected else "ok")


def test_a_duplicate_is_named_with_where_it_was_seen() -> None:
    cells = [
        spn("ex02", "dc01.contoso.example", {"SMTPSVC/ex02.contoso.example": ["EX02$"]}),
        spn("ex03", "dc03.contoso.example", {"SMTPSVC/ex02.contoso.example": ["svc-old"]}),
    ]
    assert duplicate_spns(cells)["findings"] == [
        "SMTPSVC/ex02.contoso.example is registered on EX02$ and svc-old (seen from ex02 through dc01.contoso.example, "
        "ex03 through dc03.contoso.example): Kerberos cannot tell which account a ticket for it is for "
        "(KB 979174 step 3)"
    ]


def neighbour(source: str, status: str = "ok", partition: str = "DC=contoso,DC=example") -> dict[str, t.Any]:
    text = "failing with 1722 (RPC_S_SERVER_UNAVAILABLE)" if status == "failing" else status
    return {"partition": partition, "source": f"{source}.{DOMAIN}", "status": status, "text": text}


def replication(
    host: str, found: list[dict[str, t.Any]], after: list[dict[str, t.Any]] | None = None, *, check_mode: bool = True
) -> dict[str, t.Any]:
    evidence = {"dc": f"{host}.{DOMAIN}", "neighbors": after if after is not None else found, "neighbors_before": found}
    return {"host": host, "check": "ad_replication", "status": "ok", "check_mode": check_mode, "evidence": evidence}


def test_a_dc_whose_link_fails_and_the_dcs_that_replicate_from_it() -> None:
    cells = [
        replication("dc01", [neighbour("dc02"), neighbour("dc03")]),
        replication("dc02", [neighbour("dc01"), neighbour("dc03")]),
        replication(
            "dc03",
            [neighbour("dc01", "failing"), neighbour("dc01", "failing", "CN=Configuration,DC=contoso,DC=example")],
            # check mode's 'neighbors' is what a sync would leave: not what the DC has
            [neighbour("dc01"), neighbour("dc01", partition="CN=Configuration,DC=contoso,DC=example")],
        ),
    ]
    result = failing_partners(cells)
    assert result["status"] == "drift"
    assert [(pair["dc"], pair["partner"], pair["why"]) for pair in result["pairs"]] == [
        ("dc01", "dc03", "partner"),
        ("dc02", "dc03", "partner"),
        ("dc03", "dc01", "link"),
    ]
    assert result["findings"][2] == (
        "dc03 replicates from dc01, and that link fails in 2 naming context(s): failing with 1722 "
        "(RPC_S_SERVER_UNAVAILABLE) (KB 979174 step 2)"
    )
    assert result["findings"][0] == (
        "dc01 replicates from dc03, whose own inbound replication fails (from dc01): what dc01 gets from dc03 may be "
        "out of date (KB 979174 step 2)"
    )


def test_after_a_real_sync_the_neighbours_after_it_count() -> None:
    cells = [replication("dc03", [neighbour("dc01", "failing")], [neighbour("dc01")], check_mode=False)]
    assert (failing_partners(cells)["status"], failing_partners(cells)["findings"]) == ("ok", [])


def test_a_stale_link_is_failing_and_an_unaudited_partner_is_named() -> None:
    cells = [
        replication("dc01", [neighbour("dc02", "stale")]),
        {"host": "dc02", "check": "ad_replication", "status": "unreachable", "check_mode": True, "evidence": {}},
    ]
    result = failing_partners(cells)
    assert (result["status"], result["partners_not_audited"]) == ("drift", ["dc02"])


def all_findings(checks: dict[str, t.Any]) -> list[str]:
    return [item for check in checks.values() for item in check["findings"]]


def test_every_fleet_check_says_unknown_without_results_and_names_what_it_finds() -> None:
    checks = fleet_checks([])
    assert {name: check["status"] for name, check in checks.items()} == {
        "clock_spread": "unknown",
        "duplicate_spns": "unknown",
        "failing_partners": "unknown",
    }
    assert all_findings(checks) == []
    cells = [w32time("ex01", dc01=400.0), spn("ex01", "dc01", {"SMTPSVC/ex01": ["EX01$", "svc"]})]
    assert [item.split(" ", 2)[:2] for item in all_findings(fleet_checks(cells))] == [
        ["the", "clocks"],
        ["SMTPSVC/ex01", "is"],
    ]


def test_the_forest_roots_external_time_source_is_not_a_clock_of_the_fleet() -> None:
    root = w32time("dc01", time=1000.0, dc02=1.0)
    root["evidence"]["domain_controllers"] = [f"dc01.{DOMAIN}", f"dc02.{DOMAIN}"]
    result = clock_spread([root])
    assert (result["spread"], sorted(result["clocks"])) == (1.0, ["dc01", "dc02.contoso.example"])
