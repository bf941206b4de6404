"""Carrying out the policy's response to a finding about a zone file (S4, S5, S7).

Each response is made of steps that are each crash-safe and resumable on their own, so the
combination is too: encrypting in place is #6's journalled encryption; moving is
``agent.storage.relocate``'s journalled move. A linkage key goes to the key zone first and is
sealed there second: a crash between the two leaves a plaintext key in the key zone, which
the scan at start finds and seals (S5 in the key zone), so the rules themselves finish the job.

A response never raises: what went wrong becomes an ``ActionResult`` that the violation
records, so a failed action is as visible as a done one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import structlog

from agent.access.enforce import repair_path
from agent.access.plan import ZoneAccess, ZoneKind
from agent.audit.redact import redact_identity_numbers
from agent.crypto import inplace
from agent.crypto.journal import journal_dir
from agent.errors import VokterError
from agent.services import Services
from agent.storage.findings import NOTHING_DONE, ActionResult, Finding, Outcome, Response
from agent.storage.relocate import journal_folder, move_file

log = structlog.get_logger("vokterd.storage")


@dataclass(frozen=True, slots=True)
class ZoneFile:
    """A file found in a zone, and the project's other zones it may have to go to."""

    zone: ZoneAccess
    folder: str
    name: str
    #: The same project's zones by kind (the quarantine, the key zone).
    siblings: dict[ZoneKind, ZoneAccess]

    @property
    def path(self) -> str:
        return os.path.join(self.zone.path, self.folder, self.name)


def _encrypt(services: Services, where: ZoneAccess, folder: str, name: str) -> str:
    """Seal ``name`` in place; returns the sealed file's name."""
    folder_fd = inplace.open_folder(where.path, folder)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=folder_fd)
    finally:
        os.close(folder_fd)
    try:
        result = inplace.encrypt_in_place(
            journal=journal_dir(services.config.state_dir), project=where.project,
            zone=where.kind.value, zone_root=where.path, folder=folder, name=name,
            source_fd=fd, key=services.key_store.keyset(where.project).primary)
    finally:
        os.close(fd)
    return result.target_name


def _move(services: Services, where: ZoneAccess, folder: str, name: str,
          target: ZoneAccess, stem: str) -> str:
    placed = move_file(journal_folder(services.config.state_dir), project=where.project,
                       source_root=where.path, source_folder=folder, name=name,
                       target_root=target.path, target_stem=stem)
    # The moved file still carries the ACL of the zone it left: give it its new zone's.
    repair_path(target, placed)
    return placed


def carry_out(services: Services, finding: Finding, file: ZoneFile) -> ActionResult:
    """Do what ``finding.response`` says to ``file``; never raises."""
    response = finding.response
    try:
        if response is Response.ALERT:
            return NOTHING_DONE
        if response is Response.ENCRYPT:
            sealed = _encrypt(services, file.zone, file.folder, file.name)
            return ActionResult(Outcome.DONE, f"encrypted in place as {sealed}")
        if response is Response.QUARANTINE:
            quarantine = file.siblings[ZoneKind.QUARANTINE]
            placed = _move(services, file.zone, file.folder, file.name, quarantine,
                           f"{file.zone.kind.value}-{file.name}")
            moved = os.path.join(quarantine.path, placed)
            return ActionResult(Outcome.DONE, f"moved to the quarantine as {moved}")
        if response is Response.MOVE_TO_KEY_ZONE:
            key_zone = file.siblings[ZoneKind.KEY]
            placed = _move(services, file.zone, file.folder, file.name, key_zone, file.name)
            sealed = _encrypt(services, key_zone, "", placed)
            return ActionResult(Outcome.DONE, "moved to the key zone and encrypted as "
                                f"{os.path.join(key_zone.path, sealed)}")
        return ActionResult(Outcome.FAILED, f"{response.value} is not a response to a zone file")
    except VokterError as error:
        return ActionResult(Outcome.FAILED, error.one_line())
    except OSError as error:
        return ActionResult(Outcome.FAILED, f"{error.strerror or error}")
    except Exception as error:  # the watcher goes on whatever one file does
        log.exception("storage_response_failed", response=response.value,
                      path=redact_identity_numbers(file.path))
        return ActionResult(Outcome.FAILED, f"internal error: {type(error).__name__}")
