"""``vokter lifecycle certificate`` and ``vokter lifecycle verify-certificate``: the certificate of
disposal taken out of the enclave, and checked wherever it went with the public key alone (L2).

The file is opened here, with the user's own rights, and passed to the daemon as a descriptor
(vokterd never opens a path a client names); it is written under a temporary name beside the
target and renamed into place only once the daemon has written it whole.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from agent.api import UsageError, VokterError
from agent.api.offline import verify_certificate
from agent.durable import fsync_folder
from cli.context import CliState, pass_state
from cli.files import place, refuse_existing
from cli.output import clean, print_json

_METHOD_WORDS = {"delete": "deletion", "anonymise": "anonymisation", "archive": "archiving"}


def _fetch_into(state: CliState, fd: int, project_id: str, html: bool) -> Any:
    return state.client().call_streaming("lifecycle.certificate", fds=[fd], project=project_id,
                                         html=html)


def _to_stdout(state: CliState, project_id: str, html: bool) -> None:
    with tempfile.TemporaryFile(prefix="vokter-certificate-") as buffer:
        _fetch_into(state, buffer.fileno(), project_id, html)
        buffer.seek(0)
        sys.stdout.flush()
        shutil.copyfileobj(buffer, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def _to_file(state: CliState, project_id: str, html: bool, output: Path, force: bool) -> Any:
    refuse_existing((output,), force)
    folder = output.parent
    temporary: Path | None = None
    fd: int | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=folder)
        temporary = Path(name)
        result = _fetch_into(state, fd, project_id, html)
        place(temporary, output, force, during="the fetch")
        temporary = None
        fsync_folder(folder)
    except OSError as error:
        raise VokterError(f"cannot write the certificate to {output}: "
                          f"{error.strerror or error}") from None
    finally:
        if fd is not None:
            os.close(fd)
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    return result


@click.command("certificate")
@click.argument("project_id", metavar="PROJECT")
@click.option("-o", "--output", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="Write it to FILE (default: standard output).")
@click.option("--html", is_flag=True, help="The page to read and print, not the signed JSON.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--json", "as_json", is_flag=True,
              help="With -o: print what was written as JSON.")
@pass_state
def certificate(state: CliState, project_id: str, output: Path | None, html: bool, force: bool,
                as_json: bool) -> None:
    """Write PROJECT's certificate of disposal (root, the leader, the project's auditors).

    Issued when the disposal run completes: the project, its legal basis (approvals, legal
    holds checked and when, the policy's version), the decision and its rule IDs, the method,
    the keys destroyed, every file with its size and SHA-256 taken before removal, what was
    verified afterwards, and the audit checkpoints before and after the run. The JSON is
    signed with the audit trail's key; --html gives the page a person reads and prints.

    \b
    Examples:
      vokter lifecycle certificate p1234 -o p1234-certificate.json
      vokter lifecycle certificate p1234 --html -o p1234-certificate.html
      vokter lifecycle verify-certificate p1234-certificate.json --pubkey vokter-audit.pub
    """
    if output is None or str(output) == "-":
        if as_json:
            raise UsageError("--json describes a file written with -o FILE")
        _to_stdout(state, project_id, html)
        return
    result = _to_file(state, project_id, html, output, force)
    if as_json:
        print_json({**result, "output": str(output)})
        return
    what = "page" if html else "signed certificate"
    files = result["files"]
    click.echo(f"{what} of disposal of {result['project']} "
               f"({_METHOD_WORDS.get(result['method'], result['method'])}, {files} "
               f"file{'' if files == 1 else 's'}, issued {result['issued_at']}) written to "
               f"{clean(str(output))}")
    if not html:
        click.echo(f"check it: vokter lifecycle verify-certificate {clean(str(output))} "
                   f"--pubkey vokter-audit.pub")


@click.command("verify-certificate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pubkey", metavar="KEY", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The trail's public key, from 'vokter audit pubkey'.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_certificate_command(file: Path, pubkey: Path, as_json: bool) -> None:
    """Check a certificate of disposal with the public key alone: no database, no daemon.

    Checks the Ed25519 signature over the certificate's payload with KEY, that KEY is the key
    it names, and that the payload is a whole certificate whose file totals add up. Prints OK
    and a summary, or one line naming what is wrong (changed, wrong key, malformed; exit 1).

    \b
    Examples:
      vokter lifecycle verify-certificate p1234-certificate.json --pubkey vokter-audit.pub
      vokter lifecycle verify-certificate p1234-certificate.json --pubkey k.pem --json
    """
    check = verify_certificate(file, pubkey)
    cert = check.certificate
    if as_json:  # and on failure the one line on stderr, exit 1, as without --json
        print_json({"ok": check.ok, "file": str(file), "problem": check.problem,
                    "kind": check.kind,
                    "project": None if cert is None else cert.project,
                    "method": None if cert is None else cert.method,
                    "files": None if cert is None else cert.files,
                    "bytes": None if cert is None else cert.bytes,
                    "key_id": None if cert is None else cert.key_id})
    if cert is None:
        raise VokterError(f"{clean(str(file))}: {check.problem}")
    if as_json:
        return
    issued = cert.issued_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    before = "none" if cert.before_seq is None else f"event {cert.before_seq}"
    click.echo(f"OK: certificate of disposal of {clean(cert.project)} "
               f"({_METHOD_WORDS.get(cert.method, cert.method)}): {cert.files} "
               f"file{'' if cert.files == 1 else 's'}, {cert.bytes} bytes; issued {issued}, "
               f"signed by key {cert.key_id}; checkpoints before the run: {before}, after: "
               f"event {cert.after_seq}")
