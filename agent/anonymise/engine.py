"""Checking and anonymising one table (L6, L7, D4), over polars frames, without touching files.

Why apart from the files: the CLI (``vokter anonymise``) and the project-end lifecycle both
call these two functions; reading, writing, the policy's defaults and the date secret are the
caller's business (:mod:`agent.anonymise.run`). Nothing here reads the clock: ``today`` (for
telling identity numbers from other numbers) and the shuffle's seed are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from agent.anonymise.classes import Codes, FrequencySet, Ladders
from agent.anonymise.columns import as_text, factorise
from agent.anonymise.dates import shift_dates
from agent.anonymise.hierarchy import infer_kind, ladder_for
from agent.anonymise.model import BuiltInHierarchy, FileHierarchy, Ladder, Settings
from agent.anonymise.report import ClassSizes, Report, class_sizes, fewest_distinct
from agent.anonymise.screening import columns_to_remove
from agent.anonymise.search import Criteria, loss_with_suppression, search
from agent.errors import AnonymisationImpossible, Failed, InvalidRequest


def check_frame(
    frame: pl.DataFrame, quasi_identifiers: Sequence[str], k: int, *, person: str | None = None
) -> ClassSizes:
    """Class sizes over the quasi-identifiers as they are (level 0 everywhere); in persons
    when a person column is named (L7 counts persons, not rows)."""
    require_columns(frame, quasi_identifiers, what="quasi-identifier")
    if person is not None:
        require_columns(frame, [person], what="person column")
    require_k(k)
    return class_sizes(frame, quasi_identifiers, k, person=person)


def require_k(k: int) -> None:
    if k < 2:
        raise InvalidRequest(
            f"k = {k} asks for nothing: every row is its own group of 1",
            rule="L7",
            hint="give k of at least 2 (the policy's is 5)",
        )


def require_columns(frame: pl.DataFrame, names: Sequence[str], *, what: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        shown = ", ".join(frame.columns[:12]) + (", ..." if len(frame.columns) > 12 else "")
        raise InvalidRequest(
            f"no column {', '.join(repr(name) for name in missing)} to use as {what}",
            hint=f"the table's columns are: {shown}",
        )


def _validate(frame: pl.DataFrame, settings: Settings) -> None:
    require_k(settings.k)
    if not settings.quasi_identifiers:
        raise InvalidRequest("no quasi-identifiers named", hint="name them with --qi COLUMN")
    require_columns(frame, settings.quasi_identifiers, what="quasi-identifier")
    require_columns(frame, settings.sensitive, what="sensitive column")
    require_columns(frame, settings.direct_identifiers, what="direct identifier")
    require_columns(frame, [name for name, _ in settings.hierarchies], what="hierarchy column")
    if settings.person is not None:
        require_columns(frame, [settings.person], what="person column")
    if len(set(settings.quasi_identifiers)) != len(settings.quasi_identifiers):
        raise InvalidRequest("a quasi-identifier is named twice", hint="name each once")
    person = person_column(settings)
    if person is not None and person in (*settings.quasi_identifiers, *settings.sensitive):
        raise InvalidRequest(
            f"column {person!r} names persons and cannot be a quasi-identifier or sensitive",
            rule="L7", hint="groups are counted in persons by it; name other columns")
    both = set(settings.quasi_identifiers) & set(settings.sensitive)
    both |= (set(settings.quasi_identifiers) | set(settings.sensitive)) & set(
        settings.direct_identifiers
    )
    if both:
        raise InvalidRequest(
            f"column {', '.join(sorted(both))} is named in two roles",
            hint="a column is a quasi-identifier, a sensitive column or a direct identifier",
        )
    if not 0.0 <= settings.max_suppression <= 1.0:
        raise InvalidRequest(
            f"a suppression limit of {settings.max_suppression} is not a share between 0 and 1",
            rule="L7",
            hint="give e.g. 0.05 or 5%",
        )
    if settings.l_diversity == 1 or settings.l_diversity < 0:
        raise InvalidRequest(f"l = {settings.l_diversity} is not a diversity", rule="L7",
                             hint="give l of at least 2, or 0 to turn it off")
    if settings.l_diversity and not settings.sensitive:
        raise InvalidRequest("l-diversity needs a sensitive column", rule="L7",
                             hint="name it with --sensitive COLUMN")
    shift = settings.date_shift
    if shift is not None:
        require_columns(frame, [*shift.columns, shift.serial], what="date-shift column")


def _ladders(frame: pl.DataFrame, settings: Settings) -> tuple[list[Ladder], list[Codes]]:
    hierarchies = dict(settings.hierarchies)
    ladders: list[Ladder] = []
    codes: list[Codes] = []
    for name in settings.quasi_identifiers:
        factorised = factorise(as_text(frame[name]))
        spec = hierarchies.get(name) or BuiltInHierarchy(infer_kind(name, factorised.values))
        ladders.append(ladder_for(name, spec, factorised.values))
        codes.append(factorised.codes)
    return ladders, codes


@dataclass(frozen=True)
class Anonymised:
    frame: pl.DataFrame
    report: Report


def anonymise_frame(
    frame: pl.DataFrame,
    settings: Settings,
    *,
    date_secret: bytes | None,
    today: date,
    identity_share: float,
    policy_k: int,
    value_labels: Mapping[str, Sequence[str]] | None = None,
) -> Anonymised:
    """The least-loss k-anonymous version of ``frame`` (see :mod:`agent.anonymise.search`),
    with direct identifiers removed, dates shifted per person and the rows shuffled.
    ``value_labels``: the label texts of a Stata/SPSS file's labelled columns, screened for
    identity numbers like the values."""
    _validate(frame, settings)
    removals = columns_to_remove(
        frame, settings, today=today, share=identity_share, value_labels=value_labels
    )
    shifted: list[str] = []
    if settings.date_shift is not None:
        # Before the removals: the serial number may itself be a column that goes.
        shift = settings.date_shift
        if date_secret is None:
            raise InvalidRequest("dates cannot be shifted without the project's secret",
                                 rule="D4", hint="give it with --date-secret FILE")
        frame = frame.with_columns(
            shift_dates(frame[name], frame[shift.serial], date_secret, shift.max_days).alias(name)
            for name in shift.columns
        )
        shifted = list(shift.columns)
    person = person_column(settings)
    # Counted per class: each sensitive column's distinct values (l), and the persons (k).
    counted = [(name, settings.l_diversity) for name in settings.sensitive if settings.l_diversity]
    if person is not None:
        counted.append((person, settings.k))
    # Taken before the removals: the person column may itself be a column that goes.
    counted_codes = [factorise(as_text(frame[name])) for name, _ in counted]
    kept = frame.drop([removal.column for removal in removals])

    ladders, codes = _ladders(kept, settings)
    frequencies = FrequencySet.of(
        codes,
        [len(ladder.values) for ladder in ladders],
        [item.codes for item in counted_codes],
        [len(item.values) for item in counted_codes],
    )
    rows = kept.height
    allowed = int(np.floor(settings.max_suppression * rows + 1e-9))
    # Suppressing every row is no anonymisation: at least one row must be written.
    allowed = min(allowed, max(rows - 1, 0))
    criteria = Criteria(settings.k, allowed, tuple(minimum for _, minimum in counted))
    arrays = Ladders.of(ladders)
    found = search(frequencies, arrays, criteria)
    if found is None:
        raise _impossible(settings, rows, person)

    keep = ~found.verdict.suppressed[frequencies.row_combination]
    generalised = [
        pl.Series(ladder.column, ladder.labels[level], dtype=pl.Utf8).gather(code)
        for ladder, level, code in zip(ladders, found.levels, codes, strict=True)
        if level > 0
    ]
    counted_columns = [
        pl.Series(f"\0counted{index}", item.codes) for index, item in enumerate(counted_codes)
    ]
    out = kept.with_columns(*generalised, *counted_columns).filter(pl.Series(keep))
    order = np.random.default_rng(settings.seed).permutation(out.height)
    out = out[order]
    # The search and these counts are separate; they must agree before anything is written.
    after = class_sizes(out, settings.quasi_identifiers, settings.k)
    fewest = [
        fewest_distinct(out, settings.quasi_identifiers, f"\0counted{index}")
        for index in range(len(counted))
    ]
    if not after.anonymous or any(
        value < minimum for value, (_, minimum) in zip(fewest, counted, strict=True)
    ):
        raise Failed("the anonymised table failed its own k-anonymity check; nothing was written")
    out = out.drop([f"\0counted{index}" for index in range(len(counted))])

    report = Report(
        k=settings.k,
        k_reached=after.smallest if person is None else fewest[-1],
        l_diversity=settings.l_diversity,
        max_suppression=settings.max_suppression,
        rows=rows,
        rows_out=out.height,
        suppressed_rows=found.verdict.suppressed_rows,
        levels={ladder.column: level for ladder, level in zip(ladders, found.levels, strict=True)},
        level_names={
            ladder.column: ladder.level_names[level]
            for ladder, level in zip(ladders, found.levels, strict=True)
        },
        hierarchies={ladder.column: _hierarchy_name(ladder, settings) for ladder in ladders},
        loss=round(loss_with_suppression(frequencies, arrays, found.levels, found.verdict), 6),
        generalisation_loss=round(found.loss, 6),
        person=person,
        generalised=tuple(
            ladder.column for ladder, level in zip(ladders, found.levels, strict=True) if level
        ),
        classes=after.classes,
        removed_columns={removal.column: removal.reason for removal in removals},
        shifted_columns=shifted,
        nodes_checked=found.nodes_checked,
        nodes_total=found.nodes_total,
        policy_k=policy_k,
    )
    return Anonymised(out, report)


def person_column(settings: Settings) -> str | None:
    """The column naming persons: given, or the serial number dates are shifted by."""
    if settings.person is not None:
        return settings.person
    return settings.date_shift.serial if settings.date_shift is not None else None


def _impossible(settings: Settings, rows: int, person: str | None) -> AnonymisationImpossible:
    too_few = ""
    if rows < settings.k:
        too_few = f"the table has {rows} rows, fewer than k = {settings.k}; "
    persons = f" ({settings.k} persons by {person!r})" if person is not None else ""
    diverse = f" and {settings.l_diversity}-diverse" if settings.l_diversity else ""
    return AnonymisationImpossible(
        f"{too_few}no generalisation makes the table {settings.k}-anonymous{persons}{diverse}"
        f" with at most {settings.max_suppression:.1%} of rows suppressed and at least one row"
        " written, even with every quasi-identifier at '*'",
        rule="L7",
        hint="allow more suppression (--max-suppression), name fewer quasi-identifiers,"
        " or lower l",
    )


def _hierarchy_name(ladder: Ladder, settings: Settings) -> str:
    """The report names a custom hierarchy by its file, a built-in one by its kind."""
    spec = dict(settings.hierarchies).get(ladder.column)
    return spec.source if isinstance(spec, FileHierarchy) else ladder.kind
