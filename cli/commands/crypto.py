"""``vokter encrypt`` and ``vokter decrypt``: a project's files encrypted and decrypted by the
daemon, which holds the keys (S3).

The files are opened here, with the user's own rights, and passed to the daemon as
descriptors: vokterd never opens a path a client names, and a user reaches through it only
files they could open anyway. A decrypted file is written under a temporary name beside OUT
(mode 0600) and renamed into place only when the whole file authenticated; a failed
decryption leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from agent.api import UsageError, VokterError
from agent.durable import fsync_folder
from cli.context import CliState, pass_state
from cli.files import open_own, place, progress_bar, refuse_existing
from cli.output import print_json

_DENIED = "you can only encrypt files you may write, and decrypt files you may read"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"


@click.command("encrypt")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_state
def encrypt(state: CliState, path: Path, as_json: bool) -> None:
    """Encrypt PATH in place with its project's key: PATH becomes PATH.tink.

    PATH must be a file in a project's zone: the data or export zone for the leader and
    members, the key zone for key custodians (root may encrypt in any zone). The daemon writes
    the ciphertext beside PATH, makes it durable, and only then removes the plaintext; a crash
    at any moment leaves the plaintext or the whole ciphertext, never neither. PATH.tink is
    Tink's streaming AEAD (AES-256-GCM-HKDF), readable with Tink and the project's keyset.

    \b
    Examples:
      vokter encrypt /srv/vokter/p1234/data/cohort.csv
      vokter encrypt /srv/vokter/p1234/key/linkage.csv       # a key custodian
    """
    fd = open_own(path, writing=True, denied_hint=_DENIED)
    try:
        with progress_bar("encrypting", in_bytes=True) as progress:
            result = state.client().call_streaming("crypto.encrypt", fds=[fd],
                                                   on_progress=progress)
    finally:
        os.close(fd)
    encrypted = path.with_name(path.name + ".tink")
    if as_json:
        print_json({**result, "file": str(path), "encrypted_file": str(encrypted)})
        return
    click.echo(f"encrypted {path} -> {encrypted} ({_size(result['plaintext_bytes'])}, "
               f"project {result['project']}); the plaintext is removed")


@click.command("decrypt")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", metavar="OUT", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the plaintext (created mode 0600).")
@click.option("--project", "project_id", metavar="P",
              help="Whose key: needed only for a copy kept outside every zone.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_state
def decrypt(state: CliState, path: Path, output: Path, project_id: str | None, force: bool,
            as_json: bool) -> None:
    """Decrypt PATH (a .tink file) into OUT, with its project's key; PATH is left as it is.

    For the project's leader and members (data and export zones) and key custodians (the key
    zone); root, the operator, does not decrypt. Every decryption is recorded in the audit
    trail. OUT appears only when the whole file authenticated: a changed, truncated or
    foreign file fails with one line naming the problem, and nothing is written.

    \b
    Examples:
      vokter decrypt /srv/vokter/p1234/data/cohort.csv.tink -o ~/cohort.csv
      vokter decrypt ~/exports/table.csv.tink -o table.csv --project p1234
    """
    if str(output) == "-":
        raise UsageError("decrypt writes to a file (-o OUT), never to a terminal or a pipe")
    refuse_existing((output,), force)
    folder = output.parent
    source = open_own(path, denied_hint=_DENIED)
    temporary: Path | None = None
    out_fd: int | None = None
    try:
        out_fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=folder)
        temporary = Path(name)
        with progress_bar("decrypting", in_bytes=True) as progress:
            result = state.client().call_streaming(
                "crypto.decrypt", fds=[source, out_fd], on_progress=progress,
                project=project_id)
        place(temporary, output, force, during="the decryption")
        temporary = None
        fsync_folder(folder)
    except OSError as error:
        raise VokterError(f"cannot write the plaintext beside {output}: "
                          f"{error.strerror or error}") from None
    finally:
        os.close(source)
        if out_fd is not None:
            os.close(out_fd)
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    if as_json:
        print_json({**result, "file": str(path), "output": str(output)})
        return
    click.echo(f"decrypted {path} -> {output} ({_size(result['plaintext_bytes'])}, "
               f"project {result['project']})")
