"""The offline check of an audit export (A5): every edited, removed or added row fails, named.

Real exports (made through ``dispatch`` into real files) are tampered with on disk, as someone
holding the file could, and checked with the public key alone: no database, no daemon.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.offline import verify_export
from agent.audit.export_rows import csv_line, jsonl_line, parse_csv_record, parse_jsonl_line
from agent.audit.keys import public_pem
from agent.audit.verify import COLUMNS, row_hash
from tests.audit.export_support import ROOT, Export, Trail, caller, trail

__all__ = ["trail"]  # the fixture

Lines = list[bytes]


def lines_of(export: Export) -> tuple[bytes, Lines]:
    """(header, event lines) of a file whose events hold no line breaks."""
    text = export.data.read_bytes()
    if export.data.suffix == ".csv":
        header, *rows = text.split(b"\r\n")[:-1]
        return header + b"\r\n", [row + b"\r\n" for row in rows]
    return b"", text.splitlines(keepends=True)


def tamper(export: Export, change: Callable[[Lines], Lines]) -> None:
    header, rows = lines_of(export)
    export.data.write_bytes(header + b"".join(change(rows)))


def parse(export: Export, line: bytes) -> tuple[object, ...]:
    return parse_csv_record(line) if export.data.suffix == ".csv" else parse_jsonl_line(line)


def encode(export: Export, row: tuple[object, ...]) -> bytes:
    return (csv_line(row) if export.data.suffix == ".csv" else jsonl_line(row)).encode()


@pytest.fixture(params=["csv", "jsonl"])
def project_export(request: pytest.FixtureRequest, trail: Trail) -> Export:
    trail.append(12)
    trail.append(3, project="p9999")
    trail.append(4)
    exported = trail.export(caller(trail.auditor), f"p1234.{request.param}",
                            fmt=request.param, project="p1234")
    assert exported.result["mode"] == "project"
    assert trail.verify(exported).ok
    return exported


def test_a5_an_edited_row_fails_naming_the_row_and_event(trail: Trail,
                                                         project_export: Export) -> None:
    def edit(rows: Lines) -> Lines:
        rows[5] = rows[5].replace(b"/data/f", b"/data/g")
        return rows

    seq = parse(project_export, lines_of(project_export)[1][5])[0]
    tamper(project_export, edit)
    report = trail.verify(project_export)
    assert not report.ok and report.kind == "changed"
    assert report.row == 6 and report.seq == seq
    assert report.problem is not None and report.problem.startswith("row 6: ")
    assert f"event {seq}" in report.problem and "was changed" in report.problem


@pytest.mark.parametrize(("where", "index"), [("first", 0), ("middle", 7), ("last", -1)])
def test_a5_a_removed_row_fails_as_deleted(trail: Trail, project_export: Export, where: str,
                                           index: int) -> None:
    def remove(rows: Lines) -> Lines:
        del rows[index]
        return rows

    tamper(project_export, remove)
    report = trail.verify(project_export)
    assert not report.ok and report.kind in ("deleted", "tail_cut"), report
    assert report.problem is not None
    assert "missing" in report.problem or "removed" in report.problem


def test_a5_a_repeated_row_fails_as_inserted(trail: Trail, project_export: Export) -> None:
    tamper(project_export, lambda rows: [*rows[:4], rows[3], *rows[4:]])
    report = trail.verify(project_export)
    assert not report.ok and report.kind == "inserted" and report.row == 5


def test_a5_a_forged_row_with_a_matching_hash_added_at_the_end_fails(
    trail: Trail, project_export: Export
) -> None:
    """Whoever holds the file can compute a hash, but cannot move the signed end."""
    _, rows = lines_of(project_export)
    last = parse(project_export, rows[-1])
    forged = list(last)
    forged[0], forged[6] = int(last[0]) + 1, int(last[6]) + 1  # seq, project_seq
    forged[12], forged[13] = last[14], last[14]  # linked to the last event
    forged[14] = row_hash(tuple(forged))
    tamper(project_export, lambda lines: [*lines, encode(project_export, tuple(forged))])
    report = trail.verify(project_export)
    assert not report.ok and report.kind == "inserted"
    assert report.problem is not None and "beyond the export's last event" in report.problem


def test_a5_two_swapped_rows_fail(trail: Trail, project_export: Export) -> None:
    def swap(rows: Lines) -> Lines:
        rows[3], rows[4] = rows[4], rows[3]
        return rows

    tamper(project_export, swap)
    report = trail.verify(project_export)
    assert not report.ok and report.row in (4, 5), report


def test_a5_a_change_that_keeps_every_row_intact_fails_on_the_files_hash(
    trail: Trail, project_export: Export
) -> None:
    if project_export.data.suffix == ".csv":
        return  # CSV rows allow no spacing: covered by the malformed-row test
    tamper(project_export, lambda rows: [rows[0].replace(b'{"seq"', b'{ "seq"'), *rows[1:]])
    report = trail.verify(project_export)
    assert not report.ok and report.kind == "changed"
    assert report.problem is not None and "SHA-256" in report.problem


def test_a5_a_malformed_row_is_named(trail: Trail, project_export: Export) -> None:
    tamper(project_export, lambda rows: [*rows[:2], b"not an event\r\n", *rows[2:]])
    report = trail.verify(project_export)
    assert not report.ok and report.kind == "malformed" and report.row == 3


def test_a5_a_manifest_of_another_export_fails(trail: Trail, project_export: Export) -> None:
    trail.append(2)
    suffix = project_export.data.suffix.lstrip(".")
    other = trail.export(ROOT, f"other.{suffix}", fmt=suffix, project="p1234")
    shutil.copy(other.manifest, project_export.manifest)
    report = trail.verify(project_export)
    assert not report.ok
    assert report.problem is not None
    assert f"the manifest describes 'other.{suffix}'" in report.problem


def test_a5_another_enclaves_key_fails(trail: Trail, project_export: Export,
                                       tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(public_pem(Ed25519PrivateKey.generate().public_key()))
    report = verify_export(project_export.data, stranger, project_export.manifest)
    assert not report.ok and report.kind == "wrong_key"
    assert report.problem is not None and "not by this public key" in report.problem


def test_a5_an_edited_manifest_fails(trail: Trail, project_export: Export) -> None:
    document = json.loads(project_export.manifest.read_text())
    document["payload"] = document["payload"].replace('"count":18', '"count":17')
    assert '"count":17' in document["payload"]
    project_export.manifest.write_text(json.dumps(document))
    report = trail.verify(project_export)
    assert not report.ok and report.kind == "manifest_edited"


def test_a5_a_not_a_key_and_a_missing_manifest_are_one_clear_line(
    trail: Trail, project_export: Export, tmp_path: Path
) -> None:
    report = verify_export(project_export.data, project_export.manifest, None)
    assert not report.ok and report.problem is not None and "not a PEM public key" in report.problem
    project_export.manifest.unlink()
    report = trail.verify(project_export)
    assert not report.ok and report.kind == "unreadable"
    assert report.problem is not None and "--manifest" in report.problem


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a5_filtered_rows_edited_removed_or_added_fail(trail: Trail, fmt: str) -> None:
    trail.append(5, actor="alice")
    trail.append(3, actor="bob", uid=5002)
    trail.append(2, actor="alice")
    trail.append(3, actor="bob", uid=5002)
    exported = trail.export(ROOT, f"bob.{fmt}", fmt=fmt, user="bob")
    assert exported.result["mode"] == "rows" and trail.verify(exported).ok
    original = exported.data.read_bytes()

    tamper(exported, lambda lines: [lines[0], lines[1].replace(b"/data/f", b"/data/g"),
                                    *lines[2:]])
    assert trail.verify(exported).kind == "changed"

    exported.data.write_bytes(original)
    tamper(exported, lambda lines: [*lines[:2], *lines[3:]])
    report = trail.verify(exported)
    assert report.kind == "deleted" and report.problem is not None
    assert "holds 5 events, its manifest 6" in report.problem

    exported.data.write_bytes(original)
    alices = trail.export(ROOT, f"alice.{fmt}", fmt=fmt, user="alice")
    _, alice_rows = lines_of(alices)
    tamper(exported, lambda lines: [*lines[:2], alice_rows[5], *lines[2:]])
    report = trail.verify(exported)
    assert report.kind == "inserted" and report.row == 3
    assert report.problem is not None and "is not of the exported user bob" in report.problem


def test_a5_the_whole_trail_tampered_anywhere_fails(trail: Trail) -> None:
    trail.append(8)
    trail.append(4, project=None, action="policy.reload")
    exported = trail.export(ROOT, "all.csv")
    assert exported.result["mode"] == "trail" and trail.verify(exported).ok

    def edit(rows: Lines) -> Lines:
        rows[9] = rows[9].replace(b'"ok"', b'"refused"', 1)
        return rows

    tamper(exported, edit)
    report = trail.verify(exported)
    assert not report.ok and report.row == 10 and report.kind == "changed"


def test_a5_odd_text_survives_the_csv_round_trip(trail: Trail) -> None:
    trail.append(2)
    with trail.services.store.write() as session:
        from agent.audit.chain import EventFields
        from agent.audit.trail import append_events

        append_events(session, [EventFields(
            time=trail.clock.now(), actor_uid=5001, actor="alice", action="file.open",
            outcome="ok", project_id="p1234", target='odd "name",\r\nnext line, ü.csv',
            rule=None, details={"empty": ""})], mac_key=trail.services.audit_keys.mac_key)
    exported = trail.export(ROOT, "odd.csv", project="p1234")
    report = trail.verify(exported)
    assert report.ok, report.problem
    assert report.count == exported.result["count"]


def test_a5_an_export_that_matches_nothing_verifies_and_cannot_grow(trail: Trail) -> None:
    trail.append(3)
    exported = trail.export(ROOT, "none.jsonl", fmt="jsonl", user="nobody")
    assert exported.result["count"] == 0
    assert trail.verify(exported).ok
    full = trail.export(ROOT, "p.jsonl", fmt="jsonl", project="p1234")
    exported.data.write_bytes(full.data.read_bytes().splitlines(keepends=True)[0])
    report = trail.verify(exported)
    assert not report.ok and report.kind == "inserted"


def test_a5_the_verifier_in_docs_audit_format_checks_a_real_export(trail: Trail,
                                                                    tmp_path: Path) -> None:
    """The worked example of docs/audit-format.md is code an auditor may copy: it must work."""
    document = (Path(__file__).parents[2] / "docs" / "audit-format.md").read_text()
    [program] = re.findall(r"```python\n(.*?)```", document, re.DOTALL)
    script = tmp_path / "check.py"
    script.write_text(program)
    trail.append(5)
    exported = trail.export(ROOT, "all.jsonl", fmt="jsonl")
    run = subprocess.run([sys.executable, str(script), str(exported.data),
                          str(exported.manifest), str(trail.pubkey)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert f"{exported.result['count']} events, hashes and file digest OK" in run.stdout
    tamper(exported, lambda rows: [rows[0].replace(b"project.create", b"project.delete"),
                                   *rows[1:]])
    run = subprocess.run([sys.executable, str(script), str(exported.data),
                          str(exported.manifest), str(trail.pubkey)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode != 0 and "file changed" in run.stderr


ODD_TEXTS = ["", '"', '""', ",", "a,b", "line\r\nbreak", "cr\ronly", "ü 𝄞 \u2028", "back\\slash",
             "tab\there", "{\"json\": [1, 2]}", "\x00nul"]


@pytest.mark.parametrize("value", ODD_TEXTS)
def test_a5_every_text_and_absent_value_survives_both_formats_exactly(value: str) -> None:
    """Absent and empty hash apart, so the files must keep them apart too."""
    for nullable in (value, None):
        row = (7, value, 1001, value, value, nullable, None if nullable is None else 3,
               nullable, value, nullable, value, value, value, nullable, value, value)
        assert parse_csv_record(csv_line(row).encode()) == row
        assert parse_jsonl_line(jsonl_line(row).encode()) == row
        assert jsonl_line(row) == json.dumps(dict(zip(COLUMNS, row, strict=True)),
                                             ensure_ascii=False, separators=(",", ":")) + "\n"
