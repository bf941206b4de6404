"""Is this file in this zone a violation, and what does the policy say to do? (S4, S5, S7)

Pure: the shell hands in what it learnt about one file (``FileEvidence``: which zone, whether it
is sealed with the project's key, what the detectors found) and the storage policy; the answer
is a list of ``Finding`` values, each carrying its rule and the response to carry out.

The table of decisions, zone by zone:

=============  ==================================  ===========================================
zone           what was found in plaintext          finding and response
=============  ==================================  ===========================================
data           a linkage key                        S5: move it into the key zone, sealed
data           an identity-number column            S4: the policy's ``identifiable_action``
data           identity numbers in running text     S4: alert only (single hits are weak
                                                    evidence: about 1 % of random 11-digit
                                                    numbers pass the checks)
key            a linkage key or identity numbers    S5: sealed in place (the key is "specially
                                                    secured")
export         a linkage key, an identity column    S7: the policy's ``export_plaintext_
               or identity numbers in text          identifiers`` (quarantine or alert)
quarantine     anything                             nothing: it is where findings go
=============  ==================================  ===========================================

A file sealed with the project's key is never a finding here: encryption satisfies S4's
"only stored encrypted" (though it is not de-identification, S3), and its content cannot be
judged without decrypting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from agent.policy.model import StoragePolicy
from agent.storage.findings import Finding, Response


@dataclass(frozen=True, slots=True)
class TableEvidence:
    """What the detectors found in one table of a file: column names and counts only."""

    name: str
    rows: int
    identity_columns: tuple[str, ...]
    #: How many values of the identity columns validated, all together.
    identity_values: int
    #: (identity column, serial column) when the table is a linkage key (S5, D6).
    linkage: tuple[str, str] | None = None
    #: False when the columns were judged from the first ``rows`` rows only.
    complete: bool = True


@dataclass(frozen=True, slots=True)
class FileEvidence:
    project: str
    #: "data", "key", "export" or "quarantine".
    zone: str
    path: str
    fingerprint: str
    #: Sealed with this project's key (its first segment authenticates).
    sealed: bool
    tables: tuple[TableEvidence, ...] = ()
    #: Identity numbers found in running text (not in a column).
    text_hits: int = 0

    @property
    def linkage(self) -> TableEvidence | None:
        return next((t for t in self.tables if t.linkage is not None), None)

    @property
    def identity_tables(self) -> tuple[TableEvidence, ...]:
        return tuple(t for t in self.tables if t.identity_columns)


def _columns(tables: tuple[TableEvidence, ...]) -> str:
    parts = []
    for table in tables:
        where = f" (sheet {table.name})" if table.name else ""
        names = ", ".join(table.identity_columns)
        rows = f"{table.rows} rows" if table.complete else f"the first {table.rows} rows"
        parts.append(f"column {names}{where}: {table.identity_values} valid of {rows}")
    return "; ".join(parts)


def _finding(evidence: FileEvidence, rule: str, kind: str, response: Response,
             summary: str, **details: object) -> Finding:
    return Finding(rule=rule, kind=kind, project=evidence.project, path=evidence.path,
                   zone=evidence.zone, fingerprint=evidence.fingerprint, response=response,
                   summary=summary, details=MappingProxyType(dict(details)))


def _details(evidence: FileEvidence) -> dict[str, object]:
    return {
        "identity_columns": [c for t in evidence.tables for c in t.identity_columns],
        "identity_values": sum(t.identity_values for t in evidence.tables),
        "text_hits": evidence.text_hits,
    }


def _linkage_summary(table: TableEvidence) -> str:
    assert table.linkage is not None
    identity, serial = table.linkage
    rows = f"{table.rows} rows" if table.complete else f"the first {table.rows} rows"
    return (f"a linkage key: column {identity} paired one-to-one with serial column {serial} "
            f"over {rows}")


def _judge_data(evidence: FileEvidence, policy: StoragePolicy) -> list[Finding]:
    key = evidence.linkage
    if key is not None:
        return [_finding(evidence, "S5", "linkage_key", Response.MOVE_TO_KEY_ZONE,
                         f"{_linkage_summary(key)}, in the data zone", **_details(evidence))]
    if evidence.identity_tables:
        return [_finding(evidence, "S4", "identity_numbers",
                         Response(policy.identifiable_action),
                         f"identity numbers in plaintext: {_columns(evidence.identity_tables)}",
                         **_details(evidence))]
    if evidence.text_hits:
        return [_finding(evidence, "S4", "identity_numbers_in_text", Response.ALERT,
                         f"{evidence.text_hits} single identity-number hit(s) in free text",
                         **_details(evidence))]
    return []


def _plaintext_summary(evidence: FileEvidence, zone: str) -> str | None:
    """What plaintext with identifiers a key or export zone file holds; None if none."""
    key = evidence.linkage
    if key is not None:
        return f"{_linkage_summary(key)}, not encrypted in the {zone} zone"
    if evidence.identity_tables:
        return (f"identity numbers in plaintext in the {zone} zone: "
                f"{_columns(evidence.identity_tables)}")
    if evidence.text_hits:
        return f"{evidence.text_hits} identity-number hit(s) in plaintext in the {zone} zone"
    return None


def _judge_key(evidence: FileEvidence) -> list[Finding]:
    summary = _plaintext_summary(evidence, "key")
    if summary is None:
        return []
    return [_finding(evidence, "S5", "plaintext_key", Response.ENCRYPT, summary,
                     **_details(evidence))]


def _judge_export(evidence: FileEvidence, policy: StoragePolicy) -> list[Finding]:
    summary = _plaintext_summary(evidence, "export")
    if summary is None:
        return []
    return [_finding(evidence, "S7", "plaintext_export",
                     Response(policy.export_plaintext_identifiers), summary,
                     **_details(evidence))]


def judge_file(evidence: FileEvidence, policy: StoragePolicy) -> list[Finding]:
    """The findings for one file; empty when it breaks no storage rule."""
    if evidence.sealed:
        return []
    if evidence.zone == "data":
        return _judge_data(evidence, policy)
    if evidence.zone == "key":
        return _judge_key(evidence)
    if evidence.zone == "export":
        return _judge_export(evidence, policy)
    return []
