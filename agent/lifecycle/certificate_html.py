"""The certificate of disposal as a page a person reads and prints (pure).

Why a page beside the signed JSON: the data owner, an ethics committee or an archivist reads
the certificate and files it on paper; they do not read JSON. The page is rendered from the
parsed, signed payload only, so it says nothing the signature does not cover, and it says so:
the JSON file stays the evidence, checked with ``vokter lifecycle verify-certificate``.

Every value is HTML-escaped (a file may be named ``<script>``); the page has no scripts and
loads nothing (a Content-Security-Policy says so to the browser as well), so it opens the same
on an offline machine in twenty years. It is produced in pieces (:func:`render_html`) because
the per-file table may have 100,000 rows.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator, Mapping
from typing import Any

from agent.audit.chain import parse_time
from agent.lifecycle.certificate_check import Certificate

_METHODS = {
    "delete": "cryptographic erase of the project's keyset, then deletion of every file of "
              "every zone (L2)",
    "anonymise": "cryptographic erase of the linkage key and the key zone, then anonymisation "
                 "of the project's tables to the k the policy sets, or their deletion where "
                 "k could not be reached (L2, L6, L7)",
    "archive": "transfer to an approved external archive, then deletion of every local file "
               "(L9)",
}
_VERIFICATION = {
    "zones_empty": "Every zone empty after the run",
    "left": "Entries left in the zones",
    "key_opens": "The project's keyset still opens",
}

_STYLE = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 10.5pt;
       color: #111; margin: 0 auto; max-width: 190mm; padding: 10mm 0; line-height: 1.4; }
header { border-bottom: 2px solid #111; margin-bottom: 6mm; }
h1 { font-size: 20pt; margin: 0 0 1mm 0; letter-spacing: .02em; }
h2 { font-size: 13pt; margin: 7mm 0 2mm 0; border-bottom: 1px solid #999;
     break-after: avoid; page-break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 1mm 0; break-after: avoid; }
p { margin: 1.5mm 0; }
.sub { color: #333; margin: 0 0 3mm 0; }
.statement { background: #f3f3f3; border-left: 4px solid #111; padding: 3mm 4mm; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm 0; }
th, td { border: 1px solid #bbb; padding: 1mm 1.5mm; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #e8e8e8; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
table.facts th { width: 32%; }
table.files { table-layout: fixed; font-size: 8pt; }
table.files td { word-break: break-all; }
table.files col.n { width: 9%; } table.files col.path { width: 44%; }
table.files col.kind { width: 8%; } table.files col.size { width: 11%; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace;
              font-size: 8pt; word-break: break-all; }
.ok { font-weight: bold; }
footer { margin-top: 8mm; border-top: 1px solid #999; padding-top: 2mm; font-size: 9pt; }
@media print { body { padding: 0; max-width: none; } a { color: inherit; } }
"""


def _e(value: Any) -> str:
    """Every value, whatever it is, escaped: nothing from the record is ever markup."""
    return html.escape("" if value is None else str(value), quote=True)


def _when(text: str) -> str:
    return parse_time(text).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(count: int) -> str:
    for unit, step in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if count >= step:
            return f"{count:,} bytes ({count / step:.1f} {unit})"
    return f"{count:,} bytes"


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else words or word + 's'}"


def _word(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_word(item)}" for key, item in value.items())
    return str(value)


def _facts(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th scope=\"row\">{_e(name)}</th><td>{_e(value)}</td></tr>"
                   for name, value in rows)
    return f"<table class=\"facts\"><tbody>{body}</tbody></table>"


def _table(headings: list[str], rows: list[list[Any]], empty: str) -> str:
    if not rows:
        return f"<p>{_e(empty)}</p>"
    head = "".join(f"<th scope=\"col\">{_e(name)}</th>" for name in headings)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _statement(cert: Certificate) -> str:
    body = cert.body
    project = body["project"]
    run = body["run"]
    zones = len(body["files"]["zones"])
    verification = body["verification"]
    text = (f"The data of research project {project['id']} (\u201c{project['title']}\u201d), "
            f"led by {project['leader']}, whose end date was {project['end_date']}, was "
            f"disposed of by {_METHODS[cert.method]}, between {_when(run['started_at'])} and "
            f"{_when(run['finished_at'])}. {_plural(cert.files, 'file')} "
            f"({_size(cert.bytes)}) in {_plural(zones, 'zone')} were removed, each listed "
            f"below with the size and SHA-256 taken before its removal.")
    if verification.get("zones_empty") is True:
        text += " Afterwards every zone was found empty."
    if verification.get("key_opens") is False:
        text += " Decryption with the project's key now fails."
    return f"<p class=\"statement\">{_e(text)}</p>"


def _legal_basis(basis: Mapping[str, Any]) -> Iterator[str]:
    yield "<h2>Legal basis</h2>"
    policy = basis["policy"]
    yield f"<p>Policy: {_e(policy['name'])}, version {_e(policy['version'])}.</p>"
    yield "<h3>Approvals (D1)</h3>"
    yield _table(["#", "Kind", "Reference", "Valid until", "Retention until", "Clinical trial",
                  "Final report"],
                 [[a["id"], a["kind"], a["reference"], a["valid_until"] or "",
                   a["retention_until"] or "", _word(a["clinical_trial"]),
                   a["final_report"] or ""] for a in basis["approvals"]],
                 "No approval was on record.")
    holds = basis["holds"]
    standing = [hold for hold in holds if hold["released_on"] is None]
    yield "<h3>Legal holds (L5)</h3>"
    yield (f"<p>Checked at {_e(_when(basis['holds_checked_at']))}: "
           f"{_e(_plural(len(standing), 'hold') + ' standing' if standing else 'none standing')}"
           f".</p>")
    yield _table(["#", "Reason", "Reference", "Released on"],
                 [[h["id"], h["reason"], h["reference"], h["released_on"] or "standing"]
                  for h in holds], "No legal hold was ever placed.")


def _method(cert: Certificate) -> Iterator[str]:
    body = cert.body
    yield "<h2>Decision and method</h2>"
    yield _table(["Step", "Rules"], [[step["step"], step["rules"]] for step in body["decision"]],
                 "No steps were recorded.")
    yield f"<p>Method: {_e(_METHODS[cert.method])}.</p>"
    yield "<h3>Keys destroyed</h3>"
    keys = body["keys_destroyed"]
    yield _facts([(name, _word(value)) for name, value in keys.items()]) if keys \
        else "<p>No key was destroyed by this run.</p>"
    tables = body["tables"]
    if tables:
        yield "<h3>Anonymisation, per table (L6, L7)</h3>"
        columns: list[str] = []
        for table in tables:
            columns.extend(name for name in table if name not in columns)
        yield _table(columns, [[_word(table.get(name)) for name in columns]
                               for table in tables], "")


def _verification(body: Mapping[str, Any]) -> Iterator[str]:
    yield "<h2>Verification after the run</h2>"
    verification = body["verification"]
    # What was checked, in the order a reader asks it; whatever else the run noted after.
    names = [name for name in _VERIFICATION if name in verification]
    names += [name for name in verification if name not in _VERIFICATION]
    rows = [(_VERIFICATION.get(name, name), _word(verification[name])) for name in names]
    yield _facts(rows) if rows else "<p>No verification was recorded.</p>"


def _checkpoint(name: str, checkpoint: Mapping[str, Any] | None) -> str:
    if checkpoint is None:
        return (f"<h3>{_e(name)}</h3><p>None: the trail had not been sealed before the run "
                f"began.</p>")
    project = "no events yet" if checkpoint["project_seq"] is None else \
        f"event {checkpoint['project_seq']}, head {checkpoint['project_head']}"
    return f"<h3>{_e(name)}</h3>" + _facts([
        ("Sealed", _when(checkpoint["time"])), ("Last event of the trail", checkpoint["seq"]),
        ("Head of the trail", checkpoint["head"]), ("The project's chain", project),
        ("Signing key", checkpoint["key_id"]), ("Signature", checkpoint["signature"])])


def _audit(body: Mapping[str, Any]) -> Iterator[str]:
    audit = body["audit"]
    yield "<h2>Audit trail</h2>"
    yield (f"<p>The trail's checkpoints before and after the run; every event of the run lies "
           f"between them. Signing key: <code>{_e(audit['key_id'])}</code>.</p>")
    yield _checkpoint("Checkpoint before the run", audit["before"])
    yield _checkpoint("Checkpoint after the run", audit["after"])


def _files(body: Mapping[str, Any]) -> Iterator[str]:
    files = body["files"]
    yield "<h2>Files removed</h2>"
    yield (f"<p>{_e(_plural(files['entries'], 'entry', 'entries'))} in all, of them "
           f"{_e(_plural(files['files'], 'file'))} ({_e(_size(files['bytes']))}); sizes and "
           f"SHA-256 sums were taken before removal.</p>")
    number = 0
    for zone in files["zones"]:
        entries = zone["entries"]
        yield f"<h3>Zone <span class=\"mono\">{_e(zone['zone'])}</span></h3>"
        yield ("<table class=\"files\"><colgroup><col class=\"n\"><col class=\"path\">"
               "<col class=\"kind\"><col class=\"size\"><col></colgroup><thead><tr>"
               "<th>#</th><th>Path</th><th>Kind</th><th>Bytes</th><th>SHA-256</th>"
               "</tr></thead><tbody>")
        chunk: list[str] = []
        for entry in entries:
            number += 1
            chunk.append(f"<tr><td class=\"num\">{number}</td><td>{_e(entry['path'])}</td>"
                         f"<td>{_e(entry['kind'])}</td><td class=\"num\">{entry['size']:,}</td>"
                         f"<td class=\"mono\">{_e(entry['sha256'] or '')}</td></tr>")
            if len(chunk) == 2000:
                yield "".join(chunk)
                chunk.clear()
        yield "".join(chunk) + "</tbody></table>"


def render_html(cert: Certificate, signature: bytes) -> Iterator[str]:
    """The page, in pieces to write one after the other."""
    body = cert.body
    project = body["project"]
    tool = body["tool"]
    yield ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
           "style-src 'unsafe-inline'\">"
           f"<title>Certificate of disposal: {_e(project['id'])}</title>"
           f"<style>{_STYLE}</style></head><body>")
    yield (f"<header><h1>Certificate of disposal</h1><p class=\"sub\">Project "
           f"<strong>{_e(project['id'])}</strong>: {_e(project['title'])}</p></header>")
    yield _statement(cert)
    yield "<h2>Project</h2>"
    yield _facts([("Project", project["id"]), ("Title", project["title"]),
                  ("Leader", project["leader"]), ("End date", project["end_date"]),
                  ("Disposal began", _when(body["run"]["started_at"])),
                  ("Disposal finished", _when(body["run"]["finished_at"]))])
    yield from _legal_basis(body["legal_basis"])
    yield from _method(cert)
    yield from _verification(body)
    yield from _audit(body)
    yield from _files(body)
    yield (f"<footer><p>Issued {_e(_when(body['issued_at']))} by {_e(tool['name'])} "
           f"{_e(tool['version'])}. This page shows the signed certificate; the certificate "
           f"file (JSON) is the evidence. Check it with the trail's public key: "
           f"<code>vokter lifecycle verify-certificate FILE --pubkey vokter-audit.pub</code>."
           f"</p><p>Signature (Ed25519, key <code>{_e(cert.key_id)}</code>): <code>"
           f"{_e(base64.b64encode(signature).decode())}</code></p></footer></body></html>\n")


def certificate_html(cert: Certificate, signature: bytes) -> str:
    return "".join(render_html(cert, signature))
