"""The shell around the engine: files in, files out (L6, L7, D4).

``vokter anonymise check|apply`` runs here, in the caller's own process and with the caller's
own permissions (no daemon: a member anonymises what they can read), and the project-end
lifecycle calls the same two functions. The settings come from :mod:`agent.anonymise.resolve`.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path

from agent.anonymise.engine import anonymise_frame, check_frame, person_column
from agent.anonymise.report import ClassSizes, Report
from agent.anonymise.resolve import Request, Resolved, settings_for
from agent.anonymise.secret import read_date_secret
from agent.anonymise.tables import read_table, write_table
from agent.anonymise.tables_meta import value_label_texts
from agent.durable import replace_durably
from agent.errors import Failed, InvalidRequest

__all__ = ["Request", "apply_file", "check_file"]


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve() or os.path.samefile(one, other)
    except OSError:
        return False


def _check_targets(
    out: Path, report: Path | None, source: Path, resolved: Resolved, *, overwrite: bool
) -> None:
    """Neither the output nor the report lands on a file the run reads (the table, the config,
    a hierarchy, the date secret: replacing the secret would shift the project's later files
    differently), not even with --overwrite; the report's folder exists before any work."""
    for target, what in ((out, "the output"), (report, "the report")):
        if target is None:
            continue
        for used in (source, *resolved.inputs):
            if _same_file(target, used):
                raise InvalidRequest(f"{target}: {what} cannot replace {used}, which this run "
                                     "reads", hint=f"name another file for {what}")
    if report is None:
        return
    if _same_file(report, out):
        raise InvalidRequest(f"{report}: the report cannot replace the output",
                             hint="name another file for --report")
    if not report.resolve().parent.is_dir():
        raise InvalidRequest(f"{report}: no folder {report.resolve().parent} to write it in",
                             hint="name a report in an existing folder")
    if report.exists() and not overwrite:
        raise InvalidRequest(f"{report}: exists already",
                             hint="choose another name for the report or pass --overwrite")


def check_file(path: Path, request: Request) -> ClassSizes:
    settings = settings_for(request).settings
    if not settings.quasi_identifiers:
        raise InvalidRequest("no quasi-identifiers named", hint="name them with --qi COLUMN")
    table = read_table(path)
    return check_frame(table.frame, settings.quasi_identifiers, settings.k,
                       person=person_column(settings))


def apply_file(
    path: Path,
    out: Path,
    request: Request,
    *,
    today: date,
    overwrite: bool = False,
    report: Path | None = None,
) -> Report:
    """Anonymise ``path`` into ``out`` (same format); the input is never changed."""
    resolved = settings_for(request)
    settings, policy = resolved.settings, resolved.policy
    _check_targets(out, report, path, resolved, overwrite=overwrite)
    secret = (
        read_date_secret(Path(settings.date_shift.secret_file))
        if settings.date_shift is not None
        else None
    )
    table = read_table(path)
    result = anonymise_frame(
        table.frame,
        settings,
        date_secret=secret,
        today=today,
        identity_share=policy.storage.identifier_column_share,
        policy_k=policy.anonymisation.k,
        value_labels=value_label_texts(table.meta),
    )
    masked = write_table(table, result.frame, out, overwrite=overwrite,
                         generalised=result.report.generalised)
    done = replace(result.report, masked_metadata=masked)
    if report is not None:
        data = json.dumps({"input": str(path), "output": str(out), **done.to_json()}, indent=2)
        try:
            replace_durably(report.resolve().parent, report.name, (data + "\n").encode(),
                            mode=0o644)
        except OSError as error:
            raise Failed(f"{out} was written, but the report {report} could not be: "
                         f"{error.strerror or error}", hint="run again with another --report"
                         ) from None
    return done
