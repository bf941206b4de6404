"""``crypto.encrypt`` and ``crypto.decrypt``: files encrypted and decrypted by the daemon, which
holds the keys, for the people the access plan lets at them (S3).

The daemon runs as root, so it never opens a path a client names: the client opens the file
(and, to decrypt, the output) with its own rights and passes the descriptors. The daemon learns
where the file is from the descriptor itself, finds the project and zone holding that path,
and, to encrypt in place, walks from the zone root down to the file's folder without following
a symlink and checks that the name there is still the very file passed. Who may do what is the
access plan's answer: whoever may open files in a zone may encrypt them there (and root, the
operator); the same people, but never root, may decrypt. Once the project has ended, only
root encrypts and only the leader decrypts, in a zone or outside one (L8). The daemon writes
no plaintext anywhere itself: decrypted bytes go only into the descriptor the client opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from sqlmodel import Session

from agent.access.acl import proc_path
from agent.access.permissions import Action, Relation, hides_existence, may
from agent.access.plan import ZONE_RELATIONS, ZoneAccess, ZoneKind, build_gate_view
from agent.access.sync import all_plans, leader_reads_after_end
from agent.api.descriptors import checked_file
from agent.api.dispatch import Caller, RequestContext
from agent.api.schemas import CryptoDecryptArgs, CryptoEncryptArgs
from agent.crypto import inplace
from agent.crypto.journal import journal_dir
from agent.crypto.stream_io import decrypt_stream
from agent.crypto.wrapping import file_associated_data
from agent.errors import (
    Failed,
    InvalidRequest,
    PermissionDenied,
    RuleViolation,
    VokterError,
)
from agent.projects.service import caller_relation, project_for
from agent.services import Services
from agent.store.tables import Project

log = structlog.get_logger("vokterd.crypto")

#: Progress frames at most every this many bytes (a frame per segment would be thousands).
PROGRESS_STEP = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Located:
    """Where a passed file is: its project, its zone, and its place below the zone root."""

    project: Project
    zone: ZoneAccess
    folder: str
    name: str


def may_touch(action: Action, relation: Relation, uid: int, zone: ZoneAccess) -> bool:
    """Pure: the action's table row, and the zone's own list of who opens files there (the
    leader and members in data and export zones, key custodians in the key zone). Root passes
    the second test only where the action lets root in at all (encryption)."""
    if not may(action, relation):
        return False
    # The leader of an ended project still reads (L8): decrypting is reading.
    readers = zone.readers if action is Action.DATA_DECRYPT else frozenset()
    return relation is Relation.ROOT or uid in zone.uids or uid in readers


def may_decrypt_elsewhere(relation: Relation, *, ended: bool = False,
                          leader_reads: bool = True) -> bool:
    """Pure: a copy outside every zone (an export taken out) is decrypted by the project's
    leader and members, the people data and export zones admit; never root. After the end
    only the leader, as long as the policy lets the leader read (L8): members keep their rows
    after the end, but not their access, wherever their copy of a ciphertext lies."""
    if ended:
        return may_after_end(Action.DATA_DECRYPT, relation, leader_reads=leader_reads)
    return may(Action.DATA_DECRYPT, relation) and relation in ZONE_RELATIONS[ZoneKind.DATA]


def may_after_end(action: Action, relation: Relation, *, leader_reads: bool) -> bool:
    """Pure: who still encrypts or decrypts a project's files once it is no longer active
    (L8). Nobody changes them any more but root, the operator; the leader keeps reading,
    when the policy says so, and decrypting is reading."""
    if action is Action.DATA_ENCRYPT:
        return relation is Relation.ROOT
    return relation is Relation.LEADER and leader_reads


def opened_path(fd: int) -> str:
    """The path the descriptor was opened at, as this process sees it."""
    try:
        path = os.readlink(proc_path(fd))
    except OSError:
        raise InvalidRequest("the file passed is not an open file") from None
    if not path.startswith("/") or path.endswith(" (deleted)"):
        raise InvalidRequest("the file passed has no name any more (it was deleted)")
    return path


def locate(session: Session, path: str) -> Located | None:
    """The project zone holding ``path``, from the stored zones (the gate's own view)."""
    zone = build_gate_view(all_plans(session)).zone_of(path)
    if zone is None:
        return None
    project = session.get(Project, zone.project)
    if project is None:
        return None
    root = zone.path.rstrip("/")
    relative = path[len(root):].strip("/")
    if not relative:
        raise InvalidRequest("a zone itself cannot be encrypted or decrypted; name a file in it")
    folder, _, name = relative.rpartition("/")
    return Located(project, zone, folder, name)


def _progress(ctx: RequestContext, total: int) -> Callable[[int], None]:
    sent = [0]
    ctx.progress(0, total)

    def report(done: int) -> None:
        if done - sent[0] >= PROGRESS_STEP or done >= total:
            sent[0] = done
            ctx.progress(done, total)

    return report


@contextmanager
def _os_errors_as_failures(path: str, undone: str) -> Iterator[None]:
    """A full disk, a quota, an I/O error: a one-line failure the user can act on, audited
    like any other, instead of an internal error."""
    try:
        yield
    except OSError as error:
        raise Failed(f"{path}: {error.strerror or error}; {undone}",
                     hint="free space or fix the file system, then try again") from None


def _refuse(action: Action, relation: Relation, path: str) -> VokterError:
    """What an unauthorised caller is told: an outsider learns nothing about the project."""
    verb = "encrypt" if action is Action.DATA_ENCRYPT else "decrypt"
    if relation is Relation.ROOT:
        return PermissionDenied(
            "root is the operator, not a project member: root does not decrypt project files",
            rule="S3", hint="ask a member of the project to decrypt it")
    if hides_existence(relation):
        return PermissionDenied(f"you may not {verb} {path}",
                                hint="ask the project's leader for access")
    return PermissionDenied(
        f"as {relation.value.replace('_', ' ')} you may not {verb} files in this zone",
        rule="S6", hint="the key zone is for key custodians; data and export zones for members")


def _after_end(action: Action, relation: Relation, project: Project, path: str,
               leader_reads: bool) -> None:
    """Refuse what the end of ``project`` took away (L8); an outsider and root are told what
    they would be told while it was active, so the refusal says nothing new to them."""
    if project.state == "active" or may_after_end(action, relation, leader_reads=leader_reads):
        return
    if relation is Relation.ROOT or hides_existence(relation):
        raise _refuse(action, relation, path)
    if action is Action.DATA_ENCRYPT:
        raise RuleViolation(f"{project.id} has ended ({project.state}): its files are changed "
                            "by no one now; only root, the operator, encrypts them", rule="L8",
                            hint="ask the operator")
    raise RuleViolation(f"{project.id} has ended ({project.state}): only its leader decrypts "
                        "its files now", rule="L8",
                        hint=f"ask {project.leader}, who keeps read access after the end")


def encrypt_file(ctx: RequestContext, _args: CryptoEncryptArgs) -> dict[str, Any]:
    (fd,) = ctx.fds
    # Replacing a file is writing it: the client shows it may, by opening it read-write.
    info = checked_file(fd, "the file to encrypt", writing=True, reading=True)
    path = opened_path(fd)
    services = ctx.services
    with services.store.read() as session:
        where = locate(session, path)
        if where is None:
            raise InvalidRequest(
                f"{path} is not in any project's zone: only zone files are encrypted in place",
                hint="move it into your project's data zone first")
        relation = caller_relation(session, ctx, where.project)
    project_id = where.project.id
    try:
        _after_end(Action.DATA_ENCRYPT, relation, where.project, path,
                   leader_reads_after_end(services))
        if not may_touch(Action.DATA_ENCRYPT, relation, ctx.caller.uid, where.zone):
            raise _refuse(Action.DATA_ENCRYPT, relation, path)
        inplace.check_name(where.name)
        keyset = services.key_store.keyset(project_id)
        with services.store.write() as session:
            ctx.audit(session, "file.encrypted", project=project_id, target=path,
                      details={"zone": where.zone.kind.value, "bytes": info.st_size})
        with _os_errors_as_failures(path, "the plaintext is kept as it was"):
            result = inplace.encrypt_in_place(
                journal=journal_dir(services.config.state_dir), project=project_id,
                zone=where.zone.kind.value, zone_root=where.zone.path, folder=where.folder,
                name=where.name, source_fd=fd, key=keyset.primary,
                progress=_progress(ctx, info.st_size))
    except VokterError as error:
        _audit_not_done(ctx, "file.encrypted", project_id, path, error)
        raise
    return {"project": project_id, "zone": where.zone.kind.value, "path": path,
            "encrypted": os.path.join(os.path.dirname(path), result.target_name),
            "plaintext_bytes": result.plaintext_bytes,
            "ciphertext_bytes": result.ciphertext_bytes}


def _decrypt_project(session: Session, ctx: RequestContext, where: Located | None, path: str,
                     asked: str | None) -> tuple[str, str | None]:
    """The project whose key decrypts the file, and its zone (None outside every zone)."""
    leader_reads = leader_reads_after_end(ctx.services)
    if where is not None:
        if asked is not None and asked != where.project.id:
            raise InvalidRequest(f"{path} lies in another project's zone than {asked}",
                                 hint="leave out --project for files in a zone")
        relation = caller_relation(session, ctx, where.project)
        _after_end(Action.DATA_DECRYPT, relation, where.project, path, leader_reads)
        if not may_touch(Action.DATA_DECRYPT, relation, ctx.caller.uid, where.zone):
            raise _refuse(Action.DATA_DECRYPT, relation, path)
        return where.project.id, where.zone.kind.value
    if asked is None:
        raise InvalidRequest(f"{path} is outside every project's zone",
                             hint="say whose file it is: vokter decrypt PATH -o OUT --project P")
    if ctx.caller.uid == 0:
        raise _refuse(Action.DATA_DECRYPT, Relation.ROOT, path)
    project, relation = project_for(session, ctx, asked, Action.DATA_DECRYPT)
    _after_end(Action.DATA_DECRYPT, relation, project, path, leader_reads)
    if not may_decrypt_elsewhere(relation, ended=project.state != "active",
                                 leader_reads=leader_reads):
        raise _refuse(Action.DATA_DECRYPT, relation, path)
    return project.id, None


def decrypt_file(ctx: RequestContext, args: CryptoDecryptArgs) -> dict[str, Any]:
    source_fd, out_fd = ctx.fds
    info = checked_file(source_fd, "the file to decrypt", writing=False)
    out = checked_file(out_fd, "the output file", writing=True)
    if (info.st_dev, info.st_ino) == (out.st_dev, out.st_ino):
        raise InvalidRequest("the file to decrypt and the output are the same file")
    path = opened_path(source_fd)
    services = ctx.services
    with services.store.read() as session:
        where = locate(session, path)
    try:
        with services.store.read() as session:
            project_id, zone = _decrypt_project(session, ctx, where, path, args.project)
        keyset = services.key_store.keyset(project_id)
        # Fail closed: no audit event, no plaintext.
        with services.store.write() as session:
            ctx.audit(session, "file.decrypted", project=project_id, target=path,
                      details={"zone": zone, "bytes": info.st_size})
        with _os_errors_as_failures(path, "nothing was decrypted"):
            os.ftruncate(out_fd, 0)
            os.lseek(out_fd, 0, os.SEEK_SET)
            os.lseek(source_fd, 0, os.SEEK_SET)
            result = decrypt_stream(source_fd, out_fd, keyset,
                                    file_associated_data(project_id),
                                    progress=_progress(ctx, info.st_size))
            os.fsync(out_fd)
    except VokterError as error:
        _audit_not_done(ctx, "file.decrypted", where.project.id if where else args.project,
                        path, error)
        raise
    return {"project": project_id, "zone": zone, "path": path,
            "plaintext_bytes": result.plaintext_bytes,
            "ciphertext_bytes": result.ciphertext_bytes}


def _audit_not_done(ctx: RequestContext, action: str, project_id: str | None, path: str,
                    error: VokterError) -> None:
    """A refused or failed encryption or decryption, in the chain of the project the file
    belongs to, so its auditors see it (dispatch records the request's refusal too, but
    without a project for a file in a zone)."""
    try:
        with ctx.services.store.write() as session:
            known = project_id is not None and session.get(Project, project_id) is not None
            ctx.audit(session, action, outcome=error.outcome,
                      project=project_id if known else None, target=path, rule=error.rule,
                      details={"error": type(error).__name__, "message": error.message[:500]})
    except Exception as audit_error:  # the request's own refusal is still recorded
        log.error("refusal_not_audited", action=action,
                  error=type(audit_error).__name__)


def recover_at_start(services: Services, caller: Caller) -> list[dict[str, Any]]:
    """Finish or undo every encryption in place a crash interrupted (after the key store is
    open: finishing one means authenticating its ciphertext). Each is logged and audited."""
    journal = journal_dir(services.config.state_dir)
    settled = inplace.recover(journal, services.key_store.keyset)
    for outcome in settled:
        log.warning("encryption_recovered", **outcome)
        with services.store.write() as session:
            known = session.get(Project, outcome.get("project", "")) is not None
            RequestContext(caller, services).audit(
                session, "file.encrypt_recovered",
                outcome="ok" if "error" not in outcome else "failed",
                project=outcome.get("project") if known else None,
                target=outcome.get("path"), details=outcome)
    return settled
