"""Checks the CLI runs itself, without a daemon: an operator edits a policy before any vokterd
reads it; an auditor checks an export far from the enclave. Files are read with the user's own
rights, never the daemon's."""

from __future__ import annotations

from pathlib import Path

from agent.audit.export_check import ExportReport, check_export
from agent.audit.keys import key_id_of, load_public_pem
from agent.audit.manifest import MANIFEST_SUFFIX, MAX_MANIFEST_BYTES
from agent.errors import PolicyInvalid
from agent.lifecycle.certificate import MAX_CERTIFICATE_BYTES
from agent.lifecycle.certificate_check import CertificateCheck, check_certificate
from agent.policy import format_issues, load_policy_file

#: An auditor's public key file is a few hundred bytes; anything far larger is the wrong file.
MAX_KEY_BYTES = 64 * 1024


def check_policy_file(path: Path) -> list[str]:
    """Every problem in the policy file, one line each; an empty list means it is valid."""
    try:
        load_policy_file(path)
    except PolicyInvalid as error:
        return format_issues(error.issues)
    return []


def manifest_path_for(export: Path) -> Path:
    """Where an export's manifest lives: beside it, ``FILE.manifest.json``."""
    return export.with_name(export.name + MANIFEST_SUFFIX)


def verify_export(export: Path, pubkey: Path, manifest: Path | None = None) -> ExportReport:
    """Check an audit export and its manifest with the trail's public key alone."""
    manifest = manifest or manifest_path_for(export)
    try:
        with pubkey.open("rb") as handle:
            pem = handle.read(MAX_KEY_BYTES + 1)
    except OSError as error:
        return ExportReport(0, problem=f"cannot read the public key {pubkey}: "
                            f"{error.strerror or error}", kind="unreadable")
    try:
        key = load_public_pem(pem[:MAX_KEY_BYTES])
    except ValueError as error:
        return ExportReport(0, problem=f"{pubkey}: {error}", kind="wrong_key")
    try:
        with manifest.open("rb") as handle:
            manifest_text = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as error:
        hint = " (pass --manifest M if it lies elsewhere)" if isinstance(
            error, FileNotFoundError) else ""
        return ExportReport(0, problem=f"cannot read the manifest {manifest}: "
                            f"{error.strerror or error}{hint}", kind="unreadable")
    try:
        with export.open("rb") as data:
            return check_export(data, export.name, manifest_text, key)
    except OSError as error:
        return ExportReport(0, problem=f"cannot read {export}: {error.strerror or error}",
                            kind="unreadable")


def verify_certificate(certificate: Path, pubkey: Path) -> CertificateCheck:
    """Check a certificate of disposal with the trail's public key alone (L2)."""
    try:
        with pubkey.open("rb") as handle:
            key = load_public_pem(handle.read(MAX_KEY_BYTES + 1)[:MAX_KEY_BYTES])
        with certificate.open("rb") as handle:
            text = handle.read(MAX_CERTIFICATE_BYTES + 1)
    except OSError as error:
        return CertificateCheck(problem=f"cannot read {error.filename}: "
                                f"{error.strerror or error}", kind="unreadable")
    except ValueError as error:
        return CertificateCheck(problem=f"{pubkey}: {error}", kind="wrong_key")
    return check_certificate(text, key, key_id_of(key))
