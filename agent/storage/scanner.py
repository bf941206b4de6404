"""Judging zone files against the storage rules and acting on what is found (S4, S5, S7, D2,
D5): one file (after a close-after-write), or every file of some zones (at start, after an
event overflow, on ``vokter scan``).

For each file: open it from its zone root without following a symlink; gather the evidence
(``evidence_io``); ask the pure rules (``rules.judge_file``, ``minimisation``) for findings;
check the file did not change while it was read (a verdict about a half-written file is
thrown away: its close event will bring it back); and for each finding not already open,
carry out the response and record the violation. Actions are serialised: two threads never
move or encrypt files at once.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog
from sqlmodel import select

from agent.access.acl import open_dir_nofollow
from agent.access.plan import ZoneAccess, ZoneKind
from agent.api.dispatch import Caller, RequestContext
from agent.audit.redact import redact_identity_numbers
from agent.crypto.inplace import open_folder
from agent.crypto.keyset import Keyset
from agent.durable import IN_FLIGHT
from agent.errors import KeyDestroyed, VokterError
from agent.services import Services
from agent.storage.copies import open_if_regular
from agent.storage.evidence_io import Gathered, fingerprint_of, gather
from agent.storage.findings import NOTHING_DONE, Finding
from agent.storage.formats import UnreadableFile, column_names
from agent.storage.minimisation import DatasetFacts, judge_minimisation
from agent.storage.responses import ZoneFile, carry_out
from agent.storage.rules import judge_file
from agent.storage.violations import record_finding, recorded_violation
from agent.store.tables import Dataset

log = structlog.get_logger("vokterd.storage")

#: The zones whose files the rules judge; the quarantine is where findings go.
JUDGED_ZONES = (ZoneKind.DATA, ZoneKind.KEY, ZoneKind.EXPORT)


@dataclass(frozen=True, slots=True)
class Judged:
    """What judging one file came to."""

    path: str
    size: int = 0
    findings: tuple[Finding, ...] = ()
    violations: tuple[int, ...] = ()
    #: Why the file was not judged ("" when it was): gone, changed while read, not regular.
    skipped: str = ""


@dataclass(slots=True)
class ScanReport:
    files: int = 0
    bytes: int = 0
    findings: int = 0
    violations: list[int] = field(default_factory=list)
    skipped: int = 0

    def add(self, judged: Judged) -> None:
        self.files += 1
        self.bytes += judged.size
        self.findings += len(judged.findings)
        self.violations.extend(judged.violations)
        self.skipped += bool(judged.skipped)

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, "bytes": self.bytes, "findings": self.findings,
                "violations": list(self.violations), "skipped": self.skipped}


def _dataset_facts(rows: Sequence[Dataset]) -> list[DatasetFacts]:
    return [DatasetFacts(id=row.id or 0, project=row.project_id, path=row.path,
                         source=row.source, variables=frozenset(json.loads(row.variables)),
                         columns=frozenset(json.loads(row.columns))) for row in rows]


class StorageRules:
    def __init__(self, services: Services, caller: Caller) -> None:
        self.services = services
        self.caller = caller
        self._acting = threading.Lock()

    # --- one file ---------------------------------------------------------------------------

    def locate(self, path: str) -> ZoneFile | None:
        """The judged zone holding ``path`` and the project's other zones; None outside."""
        view = self.services.gate_view.current()
        zone = view.zone_of(path)
        if zone is None or zone.kind not in JUDGED_ZONES:
            return None
        relative = path[len(zone.path.rstrip("/")):].strip("/")
        if not relative:
            return None
        folder, _, name = relative.rpartition("/")
        siblings = {z.kind: z for z in view.zones.values() if z.project == zone.project}
        return ZoneFile(zone, folder, name, siblings)

    def judge_path(self, path: str) -> Judged:
        """Judge the file at ``path`` and act on what is found; never raises."""
        try:
            where = self.locate(path)
            if where is None:
                return Judged(path, skipped="not in a judged zone")
            return self._judge(where)
        except Exception:
            log.exception("storage_judge_failed", path=redact_identity_numbers(path))
            return Judged(path, skipped="internal error")

    def _open(self, where: ZoneFile, folder_fd: int | None) -> int | None:
        """The file, opened from its folder (``folder_fd``, or reached from the zone root
        without following a link); None when it is gone, a symlink, or unreadable."""
        if folder_fd is not None:
            return open_if_regular(where.name, folder_fd)
        try:
            folder_fd = open_folder(where.zone.path, where.folder)
        except VokterError:
            return None
        try:
            return open_if_regular(where.name, folder_fd)
        finally:
            os.close(folder_fd)

    def _keyset(self, project: str) -> Keyset | None:
        try:
            return self.services.key_store.keyset(project)
        except KeyDestroyed:
            return None

    def _judge(self, where: ZoneFile, folder_fd: int | None = None,
               datasets: dict[str, list[DatasetFacts]] | None = None) -> Judged:
        """``folder_fd`` and ``datasets`` let a scan open each folder and read each project's
        datasets once, not once per file."""
        path = where.path
        fd = self._open(where, folder_fd)
        if fd is None:
            return Judged(path, skipped="gone or not reachable without following links")
        try:
            before = os.fstat(fd)
            if (before.st_dev, before.st_ino) in IN_FLIGHT:
                return Judged(path, skipped="the daemon's own file, being written")
            policy = self.services.policies.current()
            gathered = gather(fd, project=where.zone.project, zone=where.zone.kind.value,
                              path=path, info=before,
                              keyset=lambda: self._keyset(where.zone.project),
                              today=self.services.clock.now().date(),
                              share=policy.storage.identifier_column_share)
            findings = judge_file(gathered.evidence, policy.storage)
            findings += self._minimisation(where, gathered, fd, datasets)
            if fingerprint_of(os.fstat(fd)) != gathered.evidence.fingerprint:
                return Judged(path, before.st_size, skipped="changed while it was read")
        finally:
            os.close(fd)
        if gathered.fallback:
            log.info("storage_read_as_raw", path=redact_identity_numbers(path),
                     why=redact_identity_numbers(gathered.fallback))
        fingerprint = gathered.evidence.fingerprint
        recorded = [v for v in (self._act(where, f, fingerprint) for f in findings)
                    if v is not None]
        return Judged(path, before.st_size, tuple(findings), tuple(recorded))

    def _datasets(self, project: str) -> list[DatasetFacts]:
        with self.services.store.read() as session:
            return _dataset_facts(session.exec(select(Dataset).where(
                Dataset.project_id == project)).all())

    def _minimisation(self, where: ZoneFile, gathered: Gathered, fd: int,
                      known: dict[str, list[DatasetFacts]] | None) -> list[Finding]:
        """D2, D5: judged on column names, for projects with recorded datasets."""
        if gathered.evidence.sealed or where.zone.kind is ZoneKind.KEY:
            return []
        project = where.zone.project
        if known is None:
            datasets = self._datasets(project)
        else:
            datasets = known[project] if project in known else known.setdefault(
                project, self._datasets(project))
        if not datasets:
            return []
        headers = gathered.headers
        if gathered.quick:  # not parsed: the quick check found no identity number
            try:
                headers = tuple(h for _, h in column_names(fd, where.name))
            except UnreadableFile:
                headers = ()
        if not headers:
            return []
        # One file, one judgement: D5 linkage split across the sheets of a workbook is
        # linkage all the same, so the columns of every table are judged together.
        columns = list(dict.fromkeys(name for header in headers for name in header))
        registers = self.services.policies.current().storage.deidentified_registers
        return judge_minimisation(where.zone.project, where.path, where.zone.kind.value,
                                  gathered.evidence.fingerprint, columns, datasets, registers)

    def record(self, finding: Finding) -> int | None:
        """Record a finding about something outside the zones (nothing to carry out)."""
        return self._act(None, finding, None)

    def _still(self, where: ZoneFile, fingerprint: str) -> bool:
        """Is the file at its name still the one judged? Another worker may have moved or
        sealed it, or someone replaced it, while this one waited for its turn to act."""
        try:
            folder_fd = open_folder(where.zone.path, where.folder)
        except VokterError:
            return False
        try:
            return fingerprint_of(os.stat(where.name, dir_fd=folder_fd,
                                          follow_symlinks=False)) == fingerprint
        except OSError:
            return False
        finally:
            os.close(folder_fd)

    def _act(self, where: ZoneFile | None, finding: Finding,
             fingerprint: str | None) -> int | None:
        """Carry out the response unless this very finding is recorded already, or the file
        changed since it was judged; record it."""
        with self._acting:
            with self.services.store.read() as session:
                if recorded_violation(session, finding) is not None:
                    return None
            if where is not None and fingerprint is not None and \
                    not self._still(where, fingerprint):
                return None
            result = NOTHING_DONE if where is None else carry_out(self.services, finding, where)
            context = RequestContext(self.caller, self.services)
            try:
                with self.services.store.write() as session:
                    violation = record_finding(session, context, finding, result)
                    identifier = None if violation is None else violation.id
            except Exception as error:  # the action stands: say in the log what it was
                log.error("violation_not_recorded", rule=finding.rule, kind=finding.kind,
                          path=redact_identity_numbers(finding.path),
                          action=finding.response.value, outcome=result.outcome.value,
                          note=redact_identity_numbers(result.note),
                          error=redact_identity_numbers(str(error))[:300])
                return None
        log.warning("storage_violation", rule=finding.rule, kind=finding.kind,
                    project=finding.project, path=redact_identity_numbers(finding.path),
                    action=finding.response.value, outcome=result.outcome.value,
                    violation=identifier)
        return identifier

    # --- many files -------------------------------------------------------------------------

    def judged_zones(self, project: str | None = None) -> list[ZoneAccess]:
        zones = self.services.gate_view.current().zones.values()
        return sorted((z for z in zones if z.kind in JUDGED_ZONES
                       and (project is None or z.project == project)), key=lambda z: z.path)

    def walk(self, root: str) -> Iterator[str]:
        """Every regular file under ``root``, never through a symlink, never into another file
        system (a mount inside a zone is not the zone). Each folder is opened from / without
        following a link, so one swapped for a symlink during the walk leads nowhere."""
        device: int | None = None
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                fd = open_dir_nofollow(folder, readable=True)
            except OSError:
                continue
            try:
                here = os.fstat(fd).st_dev
                device = here if device is None else device
                if here != device:
                    continue
                with os.scandir(fd) as entries:
                    for entry in entries:
                        if entry.is_file(follow_symlinks=False):
                            yield os.path.join(folder, entry.name)
                        elif entry.is_dir(follow_symlinks=False):
                            stack.append(os.path.join(folder, entry.name))
            except OSError:
                continue
            finally:
                os.close(fd)

    def scan(self, zones: Sequence[ZoneAccess],
             progress: Callable[[int, int], None] | None = None) -> ScanReport:
        """Judge every file of ``zones``; ``progress(done, total)`` counts files. Each folder
        is opened once (from / without following a link) and its files from it."""
        folders: dict[str, list[str]] = {}
        for path in (path for zone in zones for path in self.walk(zone.path)):
            folder, _, name = path.rpartition("/")
            folders.setdefault(folder, []).append(name)
        total = sum(len(names) for names in folders.values())
        step = max(1, total // 200)  # a progress frame per half percent, not per file
        report = ScanReport()
        datasets: dict[str, list[DatasetFacts]] = {}
        if progress is not None:
            progress(0, total)
        for folder, names in folders.items():
            try:
                folder_fd: int | None = open_dir_nofollow(folder, readable=True)
            except OSError:
                folder_fd = None  # gone meanwhile: each file says so
            try:
                for name in names:
                    report.add(self._judge_in(os.path.join(folder, name), folder_fd, datasets))
                    if progress is not None and (report.files % step == 0
                                                 or report.files == total):
                        progress(report.files, total)
            finally:
                if folder_fd is not None:
                    os.close(folder_fd)
        return report

    def _judge_in(self, path: str, folder_fd: int | None,
                  datasets: dict[str, list[DatasetFacts]]) -> Judged:
        try:
            where = self.locate(path)
            if where is None:
                return Judged(path, skipped="not judged here")
            if folder_fd is None:
                return Judged(path, skipped="its folder is gone")
            return self._judge(where, folder_fd, datasets)
        except Exception:
            log.exception("storage_judge_failed", path=redact_identity_numbers(path))
            return Judged(path, skipped="internal error")
