"""Transcripts recorded on Windows (tests/transcripts/) replay against the twins, and the replay catches a twin that
answers otherwise than Windows did."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from tests.lab.fleet import Credentials, Fleet, HostState
from tests.lab.scripts import BOOTSTRAP_SHA256, LOADER_SHA256
from tests.lab.transcripts import (
    TRANSCRIPTS_DIR,
    Transcript,
    TranscriptUnusable,
    TwinDisagrees,
    host_runs,
    load_transcripts,
    replay,
)
from tests.lab.twins import TWINS, Params, Session, TwinContext
from tests.lab.twins import kerberos_log_level as kerberos_twin

SYNTHETIC = Path(__file__).resolve().parent / "data" / "transcripts"
TWIN = TWINS["kerberos_log_level"]


def recorded_hosts() -> list[t.Any]:
    try:
        hosts = host_runs(load_transcripts(TRANSCRIPTS_DIR))
    except TranscriptUnusable as exc:
        return [pytest.param(exc, id="unusable")]
    return [pytest.param(runs, id=key) for key, runs in sorted(hosts.items())]


RECORDED = recorded_hosts()


@pytest.mark.skipif(not RECORDED, reason="no transcripts recorded on Windows yet (tests/transcripts/README.md)")
@pytest.mark.parametrize("runs", RECORDED)
def test_every_recorded_host_replays_against_the_twins(runs: list[Transcript] | TranscriptUnusable) -> None:
    if isinstance(runs, TranscriptUnusable):
        pytest.fail(str(runs))
    replay(runs)


def synthetic_copy(tmp_path: Path, change: t.Callable[[list[dict[str, t.Any]]], None] | None = None) -> Path:
    """The synthetic host's runs under tmp_path, stamped with today's script and bootstrap hashes (they describe
    behaviour, not a script text), after ``change`` edited their documents."""
    documents = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(SYNTHETIC.glob("synthetic/*.json"))]
    for document in documents:
        document.update(
            version=TWIN.version, sha256=TWIN.sha256, bootstrap_sha256=BOOTSTRAP_SHA256, loader_sha256=LOADER_SHA256
        )
    if change is not None:
        change(documents)
    (tmp_path / "synthetic").mkdir(parents=True)
    for document in documents:
        path = tmp_path / "synthetic" / f"{document['host']}-{document['sequence']:06d}-{document['script']}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
    return tmp_path


def synthetic_runs(
    tmp_path: Path, change: t.Callable[[list[dict[str, t.Any]]], None] | None = None
) -> list[Transcript]:
    [runs] = list(host_runs(load_transcripts(synthetic_copy(tmp_path, change), allow_synthetic=True)).values())
    return runs


def set_stdout(document: dict[str, t.Any], **fields: t.Any) -> None:
    body = json.loads(document["stdout"])
    for path, value in fields.items():
        *parents, last = path.split("__")
        target = body
        for parent in parents:
            target = target[parent]
        target[last] = value
    document["stdout"] = json.dumps(body, separators=(",", ":")) + "\r\n"


def test_the_synthetic_fixture_is_labelled_and_written_against_the_current_script() -> None:
    runs = host_runs(load_transcripts(SYNTHETIC, allow_synthetic=True))["synthetic/synthetic-ex01"]
    assert all(run.document["synthetic"].startswith("SYNTHETIC: hand-written") for run in runs)
    assert [run.params["action"] for run in runs] == ["read", "set", "set", "remove", "read", "enable"]


def test_documented_windows_behaviour_replays_against_the_twin(tmp_path: Path) -> None:
    # REG_SZ "1" read as a String, replaced by a REG_DWORD; 0xFFFFFFFF read back as -1; an unknown action's
    # ArgumentException (HResult 0x80070057).
    replay(synthetic_runs(tmp_path))


def test_a_result_the_twin_does_not_reproduce_fails_naming_the_run_and_both_answers(tmp_path: Path) -> None:
    # The belief this replay exists to catch: that .NET reads a REG_DWORD 0xFFFFFFFF as 4294967295.
    runs = synthetic_runs(tmp_path, lambda documents: set_stdout(documents[2], result__value=4294967295))
    with pytest.raises(TwinDisagrees) as raised:
        replay(runs)
    assert str(raised.value) == (
        'synthetic/synthetic-ex01-000003-kerberos_log_level.json: kerberos_log_level {"action":"set","value":-1} on '
        'synthetic-ex01: Windows answered rc=0 and the result {"exists":true,"key_exists":true,"kind":"DWord",'
        '"value":4294967295}; the twin (tests/lab/twins/kerberos_log_level.py) answered rc=0 and the result '
        '{"exists":true,"key_exists":true,"kind":"DWord","value":-1}'
    )


def test_true_and_1_are_different_answers(tmp_path: Path) -> None:
    runs = synthetic_runs(tmp_path, lambda documents: set_stdout(documents[1], result__value=True))
    with pytest.raises(TwinDisagrees) as raised:
        replay(runs)
    assert str(raised.value) == (
        'synthetic/synthetic-ex01-000002-kerberos_log_level.json: kerberos_log_level {"action":"set","value":1} on '
        'synthetic-ex01: Windows answered rc=0 and the result {"exists":true,"key_exists":true,"kind":"DWord",'
        '"value":true}; the twin (tests/lab/twins/kerberos_log_level.py) answered rc=0 and the result '
        '{"exists":true,"key_exists":true,"kind":"DWord","value":1}'
    )


def test_an_exception_must_match_in_type_and_hresult_but_not_in_its_localized_message(tmp_path: Path) -> None:
    swedish = synthetic_runs(
        tmp_path / "sv", lambda documents: set_stdout(documents[5], error__message="action m\u00e5ste vara read")
    )
    replay(swedish)

    other_hresult = synthetic_runs(tmp_path / "hr", lambda documents: set_stdout(documents[5], error__hresult=-1))
    with pytest.raises(TwinDisagrees) as raised:
        replay(other_hresult)
    assert str(raised.value) == (
        'synthetic/synthetic-ex01-000006-kerberos_log_level.json: kerberos_log_level {"action":"enable","value":null} '
        "on synthetic-ex01: Windows answered rc=1 and the exception System.ArgumentException (HResult -1); the twin "
        "(tests/lab/twins/kerberos_log_level.py) answered rc=1 and the exception System.ArgumentException "
        "(HResult -2147024809)"
    )


def test_output_windows_printed_instead_of_a_document_is_a_disagreement(tmp_path: Path) -> None:
    def parse_error(documents: list[dict[str, t.Any]]) -> None:
        documents[4].update(rc=1, stdout="", stderr="At line:1 char:5\r\n+ parse error")

    with pytest.raises(TwinDisagrees) as raised:
        replay(synthetic_runs(tmp_path, parse_error))
    assert str(raised.value) == (
        'synthetic/synthetic-ex01-000005-kerberos_log_level.json: kerberos_log_level {"action":"read","value":null} '
        "on synthetic-ex01: Windows answered no document (rc=1; stdout (empty), stderr At line:1 char:5\r\n"
        '+ parse error); the twin (tests/lab/twins/kerberos_log_level.py) answered rc=0 and the result {"exists":'
        'false,"key_exists":true,"kind":null,"value":null}'
    )


@pytest.mark.parametrize(
    ("stale", "message"),
    [
        pytest.param(
            {"version": 1, "sha256": "0123456789abcdef" + "0" * 48},
            "synthetic/synthetic-ex01-000002-kerberos_log_level.json: stale: recorded kerberos_log_level v1 (sha256 "
            f"0123456789abcdef), the twin is written against v{TWIN.version} (sha256 {TWIN.sha256[:16]}); re-record "
            "it against the current script (tests/transcripts/README.md)",
            id="another script text",
        ),
        pytest.param(
            {"bootstrap_sha256": "fedcba9876543210" + "0" * 48},
            "synthetic/synthetic-ex01-000002-kerberos_log_level.json: stale: recorded through bootstrap sha256 "
            f"fedcba9876543210, the lab emulates {BOOTSTRAP_SHA256[:16]}; re-record it against the current bootstrap "
            "(tests/transcripts/README.md)",
            id="another bootstrap",
        ),
        pytest.param(
            {"script": "w32time_config"},
            "synthetic/synthetic-ex01-000002-w32time_config.json: host script 'w32time_config' has no twin in the "
            "lab (renamed or removed?): delete the transcript",
            id="a script the lab does not know",
        ),
    ],
)
def test_a_stale_transcript_fails_with_the_hint_to_re_record_it(
    tmp_path: Path, stale: dict[str, t.Any], message: str
) -> None:
    runs = synthetic_runs(tmp_path, lambda documents: documents[1].update(stale))
    with pytest.raises(TranscriptUnusable) as raised:
        replay(runs)
    assert str(raised.value) == message


def test_a_twin_that_cannot_seed_a_host_fails_saying_what_to_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(kerberos_twin, "seed_from_transcript")
    with pytest.raises(TranscriptUnusable) as raised:
        replay(synthetic_runs(tmp_path))
    assert str(raised.value) == (
        "synthetic/synthetic-ex01-000001-kerberos_log_level.json: the twin of kerberos_log_level "
        "(tests/lab/twins/kerberos_log_level.py) has no seed_from_transcript(host, first_result, params), so no host "
        "can be seeded to replay its transcripts: add one"
    )


def test_a_host_whose_first_run_failed_cannot_be_seeded(tmp_path: Path) -> None:
    def only_the_failed_run(documents: list[dict[str, t.Any]]) -> None:
        del documents[:5]

    with pytest.raises(TranscriptUnusable) as raised:
        replay(synthetic_runs(tmp_path, only_the_failed_run))
    assert str(raised.value) == (
        "synthetic/synthetic-ex01-000006-kerberos_log_level.json: the first run of kerberos_log_level on "
        "synthetic-ex01 did not return a result, so it cannot seed the emulated host; record a sequence that starts "
        "with a read (tests/transcripts/README.md)"
    )


def test_a_hand_written_transcript_is_refused_where_recorded_ones_belong() -> None:
    with pytest.raises(TranscriptUnusable) as raised:
        load_transcripts(SYNTHETIC)
    assert str(raised.value) == (
        "synthetic/synthetic-ex01-000001-kerberos_log_level.json: hand-written, not recorded on Windows (SYNTHETIC: "
        "hand-written from documented Windows behaviour, never recorded on Windows; it tests the replay machinery only "
        "(tests/unit/lab/test_transcripts.py)); only recorded transcripts belong here"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "{",
            "lab-a/ex01-000001-kerberos_log_level.json: not JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1))",
        ),
        (
            '{"format": 1, "script": "kerberos_log_level"}',
            "lab-a/ex01-000001-kerberos_log_level.json: not a transcript "
            "(missing bootstrap_sha256, connection, host, loader_sha256, params, rc, recorded_at, sequence, sha256, "
            "stderr, stdout, version)",
        ),
    ],
    ids=["not JSON", "not a transcript"],
)
def test_a_file_that_is_not_a_transcript_is_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "lab-a").mkdir()
    (tmp_path / "lab-a" / "ex01-000001-kerberos_log_level.json").write_text(content, encoding="utf-8")
    with pytest.raises(TranscriptUnusable) as raised:
        load_transcripts(tmp_path)
    assert str(raised.value) == message


def test_two_runs_of_one_host_with_one_sequence_number_are_refused(tmp_path: Path) -> None:
    root = synthetic_copy(tmp_path)
    copy = json.loads((root / "synthetic" / "synthetic-ex01-000002-kerberos_log_level.json").read_text("utf-8"))
    (root / "synthetic" / "copy.json").write_text(json.dumps(copy), encoding="utf-8")
    with pytest.raises(TranscriptUnusable) as raised:
        host_runs(load_transcripts(root, allow_synthetic=True))
    assert str(raised.value) == "synthetic/synthetic-ex01: two runs share a sequence number ([1, 2, 2, 3, 4, 5, 6])"


NO_KEY = {"key_exists": False, "exists": False, "kind": None, "value": None}
NO_VALUE = {"key_exists": True, "exists": False, "kind": None, "value": None}
VALUES = {
    "REG_DWORD 1": ("DWord", 1),
    "REG_DWORD 0xFFFFFFFF": ("DWord", -1),
    "REG_SZ": ("String", "1"),
    "REG_QWORD": ("QWord", -2),
    "REG_MULTI_SZ": ("MultiString", ["1"]),
    "REG_BINARY": ("Binary", [1, 0]),
}
# Each action with the results it can return: a set returns the REG_DWORD it wrote, a remove no value.
FIRST_RUNS = [
    pytest.param("read", NO_KEY, id="read: no key"),
    pytest.param("read", NO_VALUE, id="read: key without LogLevel"),
    *(
        pytest.param("read", {"key_exists": True, "exists": True, "kind": kind, "value": value}, id=f"read: {name}")
        for name, (kind, value) in VALUES.items()
    ),
    pytest.param("remove", NO_VALUE, id="remove"),
    pytest.param("set", {"key_exists": True, "exists": True, "kind": "DWord", "value": -1}, id="set -1"),
]


@pytest.mark.parametrize(("action", "result"), FIRST_RUNS)
def test_a_seeded_host_answers_its_first_run_as_windows_did(action: str, result: dict[str, t.Any]) -> None:
    params = {"action": action, "value": result["value"] if action == "set" else None}
    host = HostState(name="ex01", fqdn="ex01", roles=[])

    kerberos_twin.seed_from_transcript(host, result, params)

    fleet = Fleet("seeded", Credentials("LAB", "ansible", "x"), {"ex01": host})
    context = TwinContext(host, fleet, Session("ntlm", "LAB\\ansible"))
    assert TWIN.run(context, Params(TWIN.name, params, ["action", "value"])) == result


@pytest.mark.parametrize(
    ("kind", "value"),
    [("DWord", 2**31), ("DWord", "1"), ("Unknown", None), ("String", 1)],
)
def test_a_result_no_registry_could_return_cannot_seed_a_host(kind: str, value: t.Any) -> None:
    result = {"key_exists": True, "exists": True, "kind": kind, "value": value}
    with pytest.raises(ValueError) as raised:
        kerberos_twin.seed_from_transcript(HostState(name="ex01", fqdn="ex01", roles=[]), result, {"action": "read"})
    assert str(raised.value) == f"a LogLevel of kind {kind!r} with the value {value!r} is not one the lab can hold"
