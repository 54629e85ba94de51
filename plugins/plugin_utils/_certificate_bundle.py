# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The intermediates a task gives, read and validated once per ansible-playbook run, whatever the number of hosts.

Private to the mailflow.remediation collection; not a public API and may change without notice.

ansible-playbook runs each host's task in a forked worker process, so a cache in the action plugin's memory would
live for one host only. The validated bundle is therefore kept on disk, in the controller's temporary directory of
the run (``DEFAULT_LOCAL_TMP``: ``ansible-local-<pid>...``, made by the ansible-playbook process before it forks
its workers, private to the user, removed when the run ends), under the SHA-256 of everything that decides the
outcome: the bytes of every file and content given, where each came from, and ``only_chain``. The first worker to
need a bundle takes an exclusive lock on its entry, reads and validates, and writes the verdict (the DER of the
certificates, or the error message); every other worker waits for the lock and reads the verdict. A bundle that
another task or host gives with the same bytes is the same entry; a changed file is a new one.

Reading the files again to compute the key costs microseconds; parsing PEM and PKCS #7, refusing keys, checking
every certificate and the signatures between them is what is done once.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.mailflow.remediation.plugins.plugin_utils._x509 import (
    Certificate,
    CertificateError,
    check_intermediate,
    check_one_chain,
    load_certificates,
    load_text,
    utc_now,
)

CACHE_VERSION = 1
CACHE_PREFIX = "mailflow-intermediates-"
# Validated here, or read from the verdict an earlier task of the same run wrote.
THIS_TASK = "this task"
EARLIER = "earlier in this run"


@dataclass(frozen=True)
class Source:
    """One input as given: a file on the controller (``src``) or text (``content``)."""

    option: str
    index: int
    data: bytes
    path: str | None = None

    @property
    def origin(self) -> str:
        where = f"{self.option}[{self.index}]"
        return f"{where} ({self.path})" if self.path else where


@dataclass(frozen=True)
class Bundle:
    certificates: tuple[Certificate, ...]
    sha256: str  # of the inputs: the key of the verdict
    validated: str  # THIS_TASK or EARLIER
    validation_ms: float  # how long reading and validating took, wherever it was done

    def report(self) -> dict[str, t.Any]:
        return {
            "sha256": self.sha256,
            "certificates": [item.describe() for item in self.certificates],
            "validated": self.validated,
            "validation_ms": round(self.validation_ms, 3),
        }


def read_sources(*, src: t.Sequence[str], content: t.Sequence[str]) -> list[Source]:
    """The inputs' bytes; a file that cannot be read is an error naming it."""
    sources = []
    for index, path in enumerate(src):
        origin = f"src[{index}] ({path})"
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise CertificateError(f"{origin}: no such file on the controller") from None
        except IsADirectoryError:
            raise CertificateError(f"{origin}: is a directory, not a certificate file") from None
        except OSError as exc:
            raise CertificateError(f"{origin}: cannot be read ({exc.strerror or exc})") from None
        sources.append(Source("src", index, data, path))
    sources += [Source("content", index, text.encode("utf-8")) for index, text in enumerate(content)]
    return sources


def bundle_key(sources: t.Sequence[Source], *, only_chain: bool) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} only_chain={only_chain}\n".encode())
    for source in sources:
        header = json.dumps([source.option, source.index, source.path, len(source.data)]).encode()
        digest.update(header + b"\n" + source.data + b"\n")
    return digest.hexdigest()


def validate(sources: t.Sequence[Source], *, only_chain: bool) -> tuple[Certificate, ...]:
    """Read every source and check every certificate; the first problem raises CertificateError."""
    now = utc_now()
    found: dict[str, Certificate] = {}
    for source in sources:
        if source.option == "content":
            certificates = load_text(source.data.decode("utf-8"), origin=source.origin)
        else:
            certificates = load_certificates(source.data, origin=source.origin)
        for certificate in certificates:
            check_intermediate(certificate, now=now)
            found.setdefault(certificate.sha256, certificate)
    if only_chain:
        check_one_chain(list(found.values()))
    return tuple(found.values())


def validated_bundle(
    *, src: t.Sequence[str], content: t.Sequence[str], only_chain: bool, cache_dir: Path | None
) -> Bundle:
    """The validated intermediates; with ``cache_dir``, validated by the first task of the run that needs them."""
    sources = read_sources(src=src, content=content)
    key = bundle_key(sources, only_chain=only_chain)
    if cache_dir is None:
        started = time.perf_counter()
        certificates = validate(sources, only_chain=only_chain)
        return Bundle(certificates, key, THIS_TASK, (time.perf_counter() - started) * 1000)
    entry = cache_dir / f"{CACHE_PREFIX}{key}.json"
    with _locked(cache_dir / f"{CACHE_PREFIX}{key}.lock"):
        verdict = _read_verdict(entry, key)
        validated = EARLIER
        if verdict is None:
            validated = THIS_TASK
            verdict = _validate_to_verdict(sources, key, only_chain=only_chain)
            _write_verdict(entry, verdict)
    if verdict["error"] is not None:
        raise CertificateError(str(verdict["error"]))
    certificates = tuple(
        Certificate.from_der(base64.b64decode(item["der"]), origin=str(item["origin"]))
        for item in verdict["certificates"]
    )
    return Bundle(certificates, key, validated, float(verdict["ms"]))


def _validate_to_verdict(sources: t.Sequence[Source], key: str, *, only_chain: bool) -> dict[str, t.Any]:
    started = time.perf_counter()
    error: str | None = None
    certificates: tuple[Certificate, ...] = ()
    try:
        certificates = validate(sources, only_chain=only_chain)
    except CertificateError as exc:
        error = str(exc)
    return {
        "version": CACHE_VERSION,
        "key": key,
        "error": error,
        "certificates": [{"der": item.der_base64, "origin": item.origin} for item in certificates],
        "ms": (time.perf_counter() - started) * 1000,
    }


def _read_verdict(entry: Path, key: str) -> dict[str, t.Any] | None:
    try:
        verdict = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(verdict, dict) or verdict.get("version") != CACHE_VERSION or verdict.get("key") != key:
        return None
    return verdict


def _write_verdict(entry: Path, verdict: dict[str, t.Any]) -> None:
    temporary = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(verdict), encoding="utf-8")
    temporary.replace(entry)


@contextlib.contextmanager
def _locked(path: Path) -> t.Iterator[None]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
