"""D2 and D5: which columns a project may hold, and which sources it may not combine. Pure.

Both rules are judged on column names alone, so a file is judged the moment its header is
read and nothing it holds is ever kept or reported. Names are compared as people type them
into a variable list: trimmed, ignoring case.

D2 (data minimisation). The delivered file of a dataset may hold only its approved variables.
A file *derived* from a dataset is one that carries at least two of the columns the dataset
delivered (one column, a serial number say, is common to every source and proves nothing); it
may not carry a column the dataset delivered without approval. That is our reading of "files
derived from it": a column a researcher computes under a new name cannot be traced to a source
by its name, so it is never a D2 violation. A delivered-but-unapproved column that another
dataset of the project was approved to deliver is not held against the derived file either: it
may have come from there.

D5 (de-identified registers). A file that combines variables of a dataset from a de-identified
register (NOIS, NORM, ...) with variables of a dataset from any other source is a violation. A
column counts for a side only when it is among that side's approved variables and not the
other's, so a serial column both sides share does not link them on its own. The delivered
file of a dataset is judged by D2 only: it holds what its owner sent, and linkage is something
done after delivery (a delivered file overwritten with linked data breaks D2 all the same).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from agent.storage.findings import Finding, Response

UNAPPROVED_VARIABLES = "unapproved_variables"
DEIDENTIFIED_LINKAGE = "deidentified_linkage"
#: A file derived from a dataset carries at least this many of the columns it delivered.
DERIVED_MIN_SHARED = 2
#: Column names shown in a summary; the details hold them all.
_SUMMARY_NAMES = 12
#: The violation table's fingerprint column holds this many characters.
_FINGERPRINT_CHARS = 128


@dataclass(frozen=True, slots=True)
class DatasetFacts:
    """A recorded dataset as the rules need it: its approved variables and delivered columns."""

    id: int
    project: str
    path: str
    source: str
    #: The variables the project was approved to receive.
    variables: frozenset[str]
    #: The columns the delivered file held when it was recorded.
    columns: frozenset[str]


def normalise(name: str) -> str:
    """A column or variable name as compared: trimmed, ignoring case."""
    return name.strip().casefold()


def _names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n for n in (normalise(name) for name in names) if n)


def _spelt(columns: Sequence[str], wanted: frozenset[str]) -> list[str]:
    """The file's own spelling of the ``wanted`` columns, each once, in the file's order."""
    seen: set[str] = set()
    found: list[str] = []
    for column in columns:
        key = normalise(column)
        if key in wanted and key not in seen:
            seen.add(key)
            found.append(column.strip())
    return found


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SUMMARY_NAMES])
    more = len(names) - _SUMMARY_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _fingerprint(fingerprint: str, part: str) -> str:
    """One fingerprint per dataset, so each dataset's D2 finding about a file is its own
    violation (violations are kept once per rule, path and fingerprint)."""
    combined = f"{fingerprint}/{part}"
    if len(combined) <= _FINGERPRINT_CHARS:
        return combined
    return "sha256:" + hashlib.sha256(combined.encode("utf-8", "surrogatepass")).hexdigest()


def _d2(
    project: str,
    path: str,
    zone: str | None,
    fingerprint: str,
    columns: Sequence[str],
    dataset: DatasetFacts,
    approved_elsewhere: frozenset[str],
) -> Finding | None:
    held = _names(columns)
    approved = _names(dataset.variables)
    if path == dataset.path:
        unapproved = held - approved
        how = "delivered file"
    else:
        delivered = _names(dataset.columns)
        if len(held & delivered) < DERIVED_MIN_SHARED:
            return None
        unapproved = (held & delivered) - approved - approved_elsewhere
        how = "derived file"
    if not unapproved:
        return None
    names = _spelt(columns, unapproved)
    count = len(names)
    return Finding(
        rule="D2",
        kind=UNAPPROVED_VARIABLES,
        project=project,
        path=path,
        zone=zone,
        fingerprint=_fingerprint(fingerprint, f"dataset:{dataset.id}"),
        response=Response.ALERT,
        summary=(
            f"{count} column{'s' if count != 1 else ''} not approved for dataset {dataset.id} "
            f"({dataset.source}) in its {how}: {_listing(names)}"
        ),
        details=MappingProxyType(
            {"dataset": dataset.id, "source": dataset.source, "derived": how == "derived file",
             "columns": names}
        ),
    )


def _d5(
    project: str,
    path: str,
    zone: str | None,
    fingerprint: str,
    columns: Sequence[str],
    datasets: Sequence[DatasetFacts],
    deidentified: frozenset[str],
) -> Finding | None:
    held = _names(columns)
    by_source: dict[str, set[str]] = {}
    spelling: dict[str, str] = {}
    for dataset in datasets:
        key = normalise(dataset.source)
        by_source.setdefault(key, set()).update(_names(dataset.variables))
        spelling.setdefault(key, dataset.source.strip())
    links: list[tuple[str, list[str], list[str], list[str]]] = []
    for register in sorted(k for k in by_source if k in deidentified):
        own = frozenset(by_source[register])
        others = {k: v for k, v in by_source.items() if k != register}
        everything_else = frozenset().union(*others.values()) if others else frozenset()
        mine = held & (own - everything_else)
        theirs = held & (everything_else - own)
        if not mine or not theirs:
            continue
        sources = sorted(spelling[k] for k, v in others.items() if theirs & v)
        links.append(
            (spelling[register], _spelt(columns, mine), sources, _spelt(columns, theirs))
        )
    if not links:
        return None
    summary = "; ".join(
        f"de-identified register {register} ({_listing(mine)}) linked with "
        f"{', '.join(sources)} ({_listing(theirs)})"
        for register, mine, sources, theirs in links
    )
    return Finding(
        rule="D5",
        kind=DEIDENTIFIED_LINKAGE,
        project=project,
        path=path,
        zone=zone,
        fingerprint=fingerprint,
        response=Response.ALERT,
        summary=summary,
        details=MappingProxyType(
            {
                "links": [
                    {"register": register, "columns": mine, "sources": sources,
                     "linked_columns": theirs}
                    for register, mine, sources, theirs in links
                ]
            }
        ),
    )


def judge_minimisation(
    project: str,
    path: str,
    zone: str | None,
    fingerprint: str,
    columns: Sequence[str],
    datasets: Sequence[DatasetFacts],
    deidentified: Sequence[str],
) -> list[Finding]:
    """The D2 and D5 findings about a file of ``project`` holding ``columns``.

    ``datasets`` may hold other projects' datasets: only ``project``'s count. ``deidentified``
    is the policy's ``storage.deidentified_registers``. D2 findings come first, one per
    dataset in id order, then at most one D5 finding naming every link the file makes.
    """
    own = sorted((d for d in datasets if d.project == project), key=lambda d: d.id)
    findings: list[Finding] = []
    for dataset in own:
        approved_elsewhere = _names(
            v for other in own if other.id != dataset.id for v in other.variables
        )
        finding = _d2(project, path, zone, fingerprint, columns, dataset, approved_elsewhere)
        if finding is not None:
            findings.append(finding)
    if not any(d.path == path for d in own):
        linkage = _d5(project, path, zone, fingerprint, columns, own, _names(deidentified))
        if linkage is not None:
            findings.append(linkage)
    return findings
