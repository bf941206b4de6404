"""Issuing the certificate of disposal at the end of a run, and handing it out (L2).

The disposal run (:mod:`agent.lifecycle.disposal`) calls :func:`issue_certificate` once the
zones are empty and the key is gone. It seals a checkpoint over the run's events, names it and
the newest checkpoint from before the run began, signs the document with the audit trail's key
and keeps it in root's state directory beside the run's journal,
``state_dir/disposal/PROJECT/certificate.json`` (0600, written crash-safe): the journal goes
once the certificate is out, the certificate stays.

``lifecycle.certificate`` hands it to root, the leader and the project's auditors, through a
descriptor the client opened with its own rights (the daemon never opens a path a client
names), as the signed JSON or as the page to print. The stored document is checked against the
trail's key before it is handed out: a certificate changed on disk is refused, not passed on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from agent.access.permissions import Action
from agent.api.descriptors import checked_file
from agent.api.dispatch import RequestContext
from agent.api.schemas import CertificateArgs
from agent.audit.checkpoint import SignedCheckpoint, parse_checkpoint_document
from agent.audit.keys import AuditKeys
from agent.audit.seal import is_signed_by
from agent.audit.sealer import seal
from agent.audit.sealing import STORED_CANDIDATES, daemon_caller
from agent.durable import replace_durably
from agent.errors import AuditUnavailable, Failed, NotFound
from agent.lifecycle.certificate import (
    CERTIFICATE_FILE,
    MAX_CERTIFICATE_BYTES,
    CheckpointRef,
    DisposalRecord,
    certificate_document,
    certificate_payload,
)
from agent.lifecycle.certificate_check import check_certificate, parse_certificate_document
from agent.lifecycle.certificate_html import render_html
from agent.projects.service import project_for
from agent.services import Services
from agent.store.tables import AuditCheckpoint

CERTIFICATE_ISSUED = "lifecycle.certificate_issued"


def certificate_dir(services: Services, project_id: str) -> Path:
    """``state_dir/disposal/PROJECT``, made root-only if missing (the run's journal folder)."""
    folder = services.config.state_dir / "disposal"
    for path in (folder, folder / project_id):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    return folder / project_id


def certificate_path(services: Services, project_id: str) -> Path:
    return services.config.state_dir / "disposal" / project_id / CERTIFICATE_FILE


def _ref(signed: SignedCheckpoint, project_id: str) -> CheckpointRef:
    checkpoint = signed.checkpoint
    chain = checkpoint.projects.get(project_id)
    return CheckpointRef(
        seq=checkpoint.trail.seq, head=checkpoint.trail.head, time=checkpoint.time,
        key_id=checkpoint.key_id, signature=signed.document()["signature"],
        project_seq=None if chain is None else chain.seq,
        project_head=None if chain is None else chain.head)


def checkpoint_before(session: Session, keys: AuditKeys, project_id: str,
                      record: DisposalRecord) -> CheckpointRef | None:
    """The newest stored checkpoint sealed at or before the run began and signed by our key;
    a forged or garbled row is passed over. None on a trail never sealed before the run."""
    ids = session.exec(
        select(AuditCheckpoint.id).where(col(AuditCheckpoint.time) <= record.started_at)
        .order_by(col(AuditCheckpoint.time).desc(), col(AuditCheckpoint.id).desc())
        .limit(STORED_CANDIDATES)
    ).all()
    for row_id in ids:
        row = session.get(AuditCheckpoint, row_id)
        if row is None:
            continue
        try:
            signed = parse_checkpoint_document(
                json.dumps({"payload": row.payload, "signature": row.signature}))
        except ValueError:
            continue
        if is_signed_by(signed, keys):
            return _ref(signed, project_id)
    return None


def issue_certificate(services: Services, record: DisposalRecord) -> Path:
    """Seal, sign and keep the certificate of the run ``record`` describes; its path.

    Call it outside any transaction of the store: sealing takes the write lock. A damaged trail
    refuses (AuditUnavailable): no checkpoint can vouch for the run then, and a certificate
    without one proves nothing. Issuing again replaces the kept certificate, audited again."""
    keys = services.audit_keys
    with services.store.read() as session:
        before = checkpoint_before(session, keys, record.project, record)
    sealed = seal(services)
    if sealed.damage is not None or sealed.latest is None:
        problem = "the trail is empty" if sealed.damage is None else sealed.damage.message
        raise AuditUnavailable(
            f"no checkpoint can be sealed after the disposal of {record.project}, so no "
            f"certificate is issued: {problem}", rule="L2",
            hint="run 'vokter audit verify'; the certificate is issued when the run is resumed")
    after = _ref(sealed.latest, record.project)
    payload = certificate_payload(record, version=services.version, key_id=keys.key_id,
                                  before=before, after=after, issued_at=services.clock.now())
    document = certificate_document(payload, keys.sign(payload.encode("ascii"))).encode("ascii")
    folder = certificate_dir(services, record.project)
    path = folder / CERTIFICATE_FILE
    details = {
        "certificate": str(path), "sha256": hashlib.sha256(document).hexdigest(),
        "method": record.method, "files": sum(1 for item in record.files if item.kind == "file"),
        "bytes": sum(item.size for item in record.files if item.kind == "file"),
        "checkpoint_before": None if before is None else before.seq,
        "checkpoint_after": after.seq, "key_id": keys.key_id,
    }
    # Recorded first (fail closed): no audit event, no certificate.
    with services.store.write() as session:
        RequestContext(daemon_caller(), services).audit(
            session, CERTIFICATE_ISSUED, project=record.project, target=record.project,
            rule="L2", details=details)
    # Crash-safe, and never through a symlink put in the folder's place.
    replace_durably(folder, CERTIFICATE_FILE, document, mode=0o600)
    return path


def _read_stored(services: Services, project_id: str) -> bytes:
    path = certificate_path(services, project_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(
            f"no certificate of disposal has been issued for {project_id}", rule="L2",
            hint=f"it is issued when the disposal run completes; see 'vokter lifecycle plan "
                 f"{project_id}'") from None
    except OSError as error:
        raise Failed(f"the certificate of {project_id} cannot be read: {error.strerror}",
                     rule="L2") from None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(MAX_CERTIFICATE_BYTES + 1)


def _write_all(fd: int, data: bytes, digest: hashlib._Hash) -> int:
    digest.update(data)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)


def lifecycle_certificate(ctx: RequestContext, args: CertificateArgs) -> dict[str, Any]:
    """The project's certificate, written into the descriptor the client passed: the signed
    JSON as kept, or (``html``) the page rendered from it."""
    (out_fd,) = ctx.fds
    checked_file(out_fd, "the output file", writing=True)
    services = ctx.services
    with services.store.read() as session:
        project, _ = project_for(session, ctx, args.project, Action.LIFECYCLE_CERTIFICATE)
    text = _read_stored(services, project.id)
    keys = services.audit_keys
    check = check_certificate(text, keys.public_key, keys.key_id)
    certificate = check.certificate
    if certificate is None or certificate.project != project.id:
        raise Failed(f"the kept certificate of {project.id} does not verify: "
                     f"{check.problem or 'it names another project'}", rule="L2",
                     hint=f"{certificate_path(services, project.id)} was changed on disk; "
                          "restore it from backup")
    os.ftruncate(out_fd, 0)
    os.lseek(out_fd, 0, os.SEEK_SET)
    digest = hashlib.sha256()
    if args.html:
        _, signature = parse_certificate_document(text)
        size = sum(_write_all(out_fd, piece.encode("utf-8"), digest)
                   for piece in render_html(certificate, signature))
    else:
        size = _write_all(out_fd, text, digest)
    os.fsync(out_fd)
    return {
        "project": project.id, "format": "html" if args.html else "json", "bytes": size,
        "sha256": digest.hexdigest(), "method": certificate.method,
        "issued_at": certificate.body["issued_at"], "files": certificate.files,
        "file_bytes": certificate.bytes, "key_id": certificate.key_id,
        "checkpoint_before": certificate.before_seq, "checkpoint_after": certificate.after_seq,
    }
