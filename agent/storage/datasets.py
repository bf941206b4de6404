"""``dataset.add`` and ``dataset.list``: delivered datasets and their approved variables (D2).

The leader (or root) records each delivery with the variables the project applied for, as the
source names them. The delivered file comes as a descriptor the client opened with its own
rights (the daemon never opens a path a client names); the daemon learns where it lies from the
descriptor and reads only its header. A delivery that already holds columns outside the list
is a D2 violation from the moment it is recorded, in the same transaction as the record.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from agent.access.permissions import Action
from agent.access.plan import ZoneKind
from agent.api.descriptors import checked_file
from agent.api.dispatch import RequestContext
from agent.api.schemas import DatasetAddArgs, ProjectRef
from agent.audit.redact import redact_identity_numbers
from agent.crypto.file_ops import locate, opened_path
from agent.errors import AlreadyExists, Failed, InvalidRequest
from agent.projects.service import project_for
from agent.storage.evidence_io import fingerprint_of
from agent.storage.findings import NOTHING_DONE
from agent.storage.formats import UnreadableFile, column_names
from agent.storage.minimisation import DatasetFacts, judge_minimisation, normalise
from agent.storage.violations import record_finding
from agent.store.tables import Dataset

DATASET_ADDED = "dataset.added"
MAX_NAME = 128
MAX_VARIABLES = 5000


def _one_name(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidRequest(f"{what} is empty", rule="D2")
    if len(text) > MAX_NAME:
        raise InvalidRequest(f"{what} is longer than {MAX_NAME} characters", rule="D2")
    if not text.isprintable():
        raise InvalidRequest(f"{what} holds control characters", rule="D2")
    return text


def check_source(source: str) -> str:
    """The register the data came from, as D5's policy list names registers."""
    return _one_name(source, "the source register")


def check_variables(variables: list[str]) -> tuple[str, ...]:
    """The approved variables, each once (names compared ignoring case), in the list's order."""
    if not variables:
        raise InvalidRequest("the list of approved variables is empty", rule="D2",
                             hint="name one variable per line in the --variables file")
    if len(variables) > MAX_VARIABLES:
        raise InvalidRequest(f"{len(variables)} approved variables: at most {MAX_VARIABLES} "
                             "are accepted", rule="D2")
    kept: dict[str, str] = {}
    for number, name in enumerate(variables, start=1):
        text = _one_name(name, f"approved variable {number}")
        kept.setdefault(normalise(text), text)
    return tuple(kept.values())


def facts_of(row: Dataset) -> DatasetFacts:
    assert row.id is not None
    return DatasetFacts(id=row.id, project=row.project_id, path=row.path, source=row.source,
                        variables=frozenset(json.loads(row.variables)),
                        columns=frozenset(json.loads(row.columns)))


def dataset_view(row: Dataset) -> dict[str, Any]:
    variables: list[str] = json.loads(row.variables)
    columns: list[str] = json.loads(row.columns)
    approved = {normalise(v) for v in variables}
    return {
        "id": row.id,
        "project": row.project_id,
        "path": row.path,
        "source": row.source,
        "variables": variables,
        "columns": columns,
        "unapproved": [c for c in columns if normalise(c) not in approved],
        "added_by": row.added_by,
        "added": row.added_at.isoformat(),
    }


def _delivered_columns(fd: int, path: str, name: str) -> list[str]:
    """Every table's column names, each once, in the file's order (a workbook's sheets too)."""
    try:
        tables = column_names(fd, name)
    except UnreadableFile as error:
        raise InvalidRequest(f"{path}: {error.message}", rule="D2",
                             hint="record the delivered file as its owner sent it") from None
    except OSError as error:
        raise Failed(f"{path}: {error.strerror or error}; nothing was recorded") from None
    columns: dict[str, None] = {}
    for _table, header in tables:
        for column in header:
            if column.strip():
                columns.setdefault(column.strip(), None)
    if not columns:
        raise InvalidRequest(f"{path} holds no table with named columns", rule="D2",
                             hint="a dataset is a table: CSV/TSV, Parquet, Stata, SPSS or Excel")
    return list(columns)


def _project_datasets(session: Session, project_id: str) -> list[Dataset]:
    return list(session.exec(
        select(Dataset).where(Dataset.project_id == project_id).order_by(col(Dataset.id))
    ).all())


def add_dataset(ctx: RequestContext, args: DatasetAddArgs) -> dict[str, Any]:
    """Record a delivered dataset; its unapproved columns are a D2 violation at once."""
    (fd,) = ctx.fds
    with ctx.services.store.read() as session:
        project, _ = project_for(session, ctx, args.project, Action.DATASET_ADD)
    source = check_source(args.source)
    variables = check_variables(list(args.variables))
    status = checked_file(fd, "the dataset file", writing=False)
    path = opened_path(fd)
    with ctx.services.store.read() as session:
        where = locate(session, path)
    if where is None or where.project.id != project.id or where.zone.kind is not ZoneKind.DATA:
        raise InvalidRequest(f"{path} is not in the data zone of {project.id}", rule="D2",
                             hint="a delivered dataset is recorded where it lies: in the "
                                  "project's data zone")
    columns = _delivered_columns(fd, path, where.name)
    deidentified = ctx.services.policies.current().storage.deidentified_registers
    with ctx.services.store.write() as session:
        datasets = _project_datasets(session, project.id)
        for existing in datasets:
            if existing.path == redact_identity_numbers(path):
                raise AlreadyExists(f"{path} is already recorded as dataset {existing.id} of "
                                    f"{project.id}", hint=f"see 'vokter dataset list {project.id}'")
        # A file laid out with one column per person names its columns by identity numbers:
        # what is stored is masked like everything else the daemon records (S4).
        row = Dataset(project_id=project.id, path=redact_identity_numbers(path), source=source,
                      variables=json.dumps([redact_identity_numbers(v) for v in variables],
                                           ensure_ascii=False),
                      columns=json.dumps([redact_identity_numbers(c) for c in columns],
                                         ensure_ascii=False),
                      added_by=ctx.caller.name, added_at=ctx.services.clock.now())
        session.add(row)
        session.flush()
        view = dataset_view(row)
        ctx.audit(session, DATASET_ADDED, project=project.id, target=path, rule="D2",
                  details={"dataset": row.id, "source": source, "variables": len(variables),
                           "columns": len(columns), "unapproved": view["unapproved"][:50]})
        findings = judge_minimisation(
            project.id, path, ZoneKind.DATA.value, fingerprint_of(status), columns,
            [facts_of(d) for d in [*datasets, row]], deidentified)
        recorded = [record_finding(session, ctx, finding, NOTHING_DONE) for finding in findings]
    return {"dataset": view, "unapproved": view["unapproved"],
            "violations": [v.id for v in recorded if v is not None]}


def list_datasets(ctx: RequestContext, args: ProjectRef) -> list[dict[str, Any]]:
    """The project's recorded datasets, each with its approved variables and what it held."""
    with ctx.services.store.read() as session:
        project, _ = project_for(session, ctx, args.project, Action.DATASET_LIST)
        return [dataset_view(row) for row in _project_datasets(session, project.id)]
