"""The table of operations the daemon answers: name -> (argument schema, handler)."""

from __future__ import annotations

from agent.access import review as access
from agent.access import service as members
from agent.api.dispatch import Operation
from agent.api.schemas import (
    AccessReviewArgs,
    ApprovalAddArgs,
    AuditExportArgs,
    CertificateArgs,
    CopyAddArgs,
    CopyConfirmArgs,
    CryptoDecryptArgs,
    CryptoEncryptArgs,
    DatasetAddArgs,
    HoldListArgs,
    HoldPlaceArgs,
    HoldReleaseArgs,
    KeyShredArgs,
    LifecycleRunArgs,
    MemberAddArgs,
    MemberRemoveArgs,
    NoArgs,
    ProjectCreateArgs,
    ProjectEndArgs,
    ProjectRef,
    ViolationListArgs,
    ViolationResolveArgs,
)
from agent.audit import checkpoint_ops as audit_checkpoints
from agent.audit import export as audit_export
from agent.audit import verify_op as audit_verify
from agent.crypto import file_ops, key_ops
from agent.lifecycle import (
    approval_ops,
    certificate_ops,
    copy_ops,
    hold_ops,
    notice_ops,
    plan_ops,
)
from agent.projects import service as projects
from agent.status import daemon_status
from agent.storage import datasets, violation_ops
from agent.storage.scan_ops import storage_scan

OPERATIONS: dict[str, Operation] = {
    "project.create": Operation(ProjectCreateArgs, projects.create_project),
    "project.show": Operation(ProjectRef, projects.show_project),
    "project.list": Operation(NoArgs, projects.list_projects),
    "member.add": Operation(MemberAddArgs, members.add_member),
    "member.remove": Operation(MemberRemoveArgs, members.remove_member),
    "member.list": Operation(ProjectRef, members.list_members),
    "access.review": Operation(AccessReviewArgs, access.access_review),
    "access.check": Operation(ProjectRef, access.access_check),
    "status": Operation(NoArgs, daemon_status),
    "audit.pubkey": Operation(NoArgs, audit_checkpoints.audit_pubkey),
    "audit.checkpoint": Operation(audit_checkpoints.CheckpointArgs,
                                  audit_checkpoints.audit_checkpoint),
    # The export file and its manifest come as descriptors the client opened.
    "audit.export": Operation(AuditExportArgs, audit_export.export_audit, fds=2),
    "audit.verify": Operation(audit_verify.AuditVerifyArgs, audit_verify.audit_verify),
    "project.shred_key": Operation(KeyShredArgs, key_ops.shred_key),
    "keys.status": Operation(NoArgs, key_ops.keys_status),
    "keys.rotate_master": Operation(NoArgs, key_ops.rotate_master),
    # The file to encrypt in place; the file to decrypt and the output: descriptors the
    # client opened with its own rights.
    "crypto.encrypt": Operation(CryptoEncryptArgs, file_ops.encrypt_file, fds=1),
    "crypto.decrypt": Operation(CryptoDecryptArgs, file_ops.decrypt_file, fds=2),
    # Every file of a project's zones judged against the storage rules, with progress.
    "storage.scan": Operation(ProjectRef, storage_scan),
    "violations.list": Operation(ViolationListArgs, violation_ops.list_violations),
    "violations.resolve": Operation(ViolationResolveArgs, violation_ops.resolve_violation),
    # The delivered file: a descriptor the client opened with its own rights.
    "dataset.add": Operation(DatasetAddArgs, datasets.add_dataset, fds=1),
    "dataset.list": Operation(ProjectRef, datasets.list_datasets),
    "approval.add": Operation(ApprovalAddArgs, approval_ops.add_approval),
    "approval.list": Operation(ProjectRef, approval_ops.list_approvals),
    "lifecycle.plan": Operation(ProjectRef, plan_ops.lifecycle_plan),
    "project.end": Operation(ProjectEndArgs, plan_ops.end_project),
    "lifecycle.run": Operation(LifecycleRunArgs, plan_ops.lifecycle_run),
    # The certificate of disposal, into a descriptor the client opened with its own rights.
    "lifecycle.certificate": Operation(CertificateArgs, certificate_ops.lifecycle_certificate,
                                       fds=1),
    "notices.list": Operation(NoArgs, notice_ops.list_notices),
    "hold.place": Operation(HoldPlaceArgs, hold_ops.place_hold),
    "hold.release": Operation(HoldReleaseArgs, hold_ops.release_hold),
    "hold.list": Operation(HoldListArgs, hold_ops.list_holds),
    "copy.add": Operation(CopyAddArgs, copy_ops.add_copy),
    "copy.confirm": Operation(CopyConfirmArgs, copy_ops.confirm_disposed),
    "copy.list": Operation(ProjectRef, copy_ops.list_copies),
}
