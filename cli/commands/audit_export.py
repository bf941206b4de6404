"""``vokter audit export`` and ``vokter audit verify-export``: the trail taken out, and checked
where it was taken, with the public key alone.

The export file and its manifest are opened here, with the user's own rights, and passed to
the daemon as descriptors: vokterd never opens a path a client names. They are written under
temporary names beside the target and renamed into place only when the export succeeded, so a
failed or interrupted export leaves no half file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from agent.api import UsageError, VokterError
from agent.api.offline import manifest_path_for, verify_export
from agent.durable import fsync_folder
from cli.context import CliState, pass_state
from cli.files import place, progress_bar, refuse_existing
from cli.output import print_json

FORMATS = ("csv", "jsonl")


def _describe_scope(project: str | None, mode: str) -> str:
    if mode == "trail":
        return "the whole trail"
    if mode == "project":
        return f"project {project}'s whole chain"
    return "the rows matching the filters" + (f" in project {project}" if project else "")


@click.command("export")
@click.option("--project", "project_id", metavar="P",
              help="Export this project's events (an auditor must name their project).")
@click.option("--user", metavar="U", help="Only events by this user (name as recorded).")
@click.option("--since", metavar="TIME",
              help="Only events at or after TIME: ISO 8601 with a timezone, e.g. "
                   "2026-11-01T00:00:00Z or 2026-11-01T08:00+01:00.")
@click.option("--until", metavar="TIME", help="Only events at or before TIME (as --since).")
@click.option("--action", metavar="A", help="Only events of this action, e.g. file.open.")
@click.option("--format", "file_format", type=click.Choice(FORMATS), required=True,
              help="csv (RFC 4180, a header row) or jsonl (one JSON object per line).")
@click.option("-o", "--output", metavar="FILE", required=True,
              type=click.Path(dir_okay=False, readable=False, path_type=Path),
              help="Where to write; the signed manifest goes beside it, FILE.manifest.json.")
@click.option("--force", is_flag=True, help="Replace FILE and its manifest if they exist.")
@click.option("--json", "as_json", is_flag=True, help="Print what was exported as JSON.")
@pass_state
def export(state: CliState, project_id: str | None, user: str | None, since: str | None,
           until: str | None, action: str | None, file_format: str, output: Path, force: bool,
           as_json: bool) -> None:
    """Export the audit trail to FILE, with a signed manifest beside it (root; auditors).

    An auditor exports their project; root exports any project or the whole trail. Without
    filters the export is a whole chain, checked link by link; with --user, --action, --since
    or --until each row is checked on its own and the manifest pins which rows there are. The
    daemon first seals a checkpoint over the newest event and embeds it in the manifest.
    Check the export anywhere with 'vokter audit verify-export' and the public key.

    \b
    Examples:
      vokter audit export --project p1234 --format csv -o p1234-audit.csv
      vokter audit export --project p1234 --user alice --action file.open \\
          --since 2026-11-01T00:00:00+01:00 --format jsonl -o alice-nov.jsonl
      sudo vokter audit export --format jsonl -o trail.jsonl      # root: everything
    """
    if str(output) == "-":
        raise UsageError("an export needs a file (-o FILE): its manifest is written beside it")
    manifest = manifest_path_for(output)
    refuse_existing((output, manifest), force)
    folder = output.parent
    temporaries: list[Path] = []
    fds: list[int] = []
    try:
        for final in (output, manifest):
            fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=folder)
            fds.append(fd)
            temporaries.append(Path(name))
        with progress_bar("exporting") as progress:
            result = state.client().call_streaming(
                "audit.export", fds=fds, on_progress=progress, project=project_id, user=user,
                since=since, until=until, action=action, format=file_format,
                file_name=output.name)
        place(temporaries[1], manifest, force)
        try:
            place(temporaries[0], output, force)
        except BaseException:
            manifest.unlink(missing_ok=True)
            raise
        temporaries.clear()
        fsync_folder(folder)
    except OSError as error:
        raise VokterError(f"cannot write the export beside {output}: "
                          f"{error.strerror or error}") from None
    finally:
        for fd in fds:
            os.close(fd)
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
    if as_json:
        print_json({**result, "file": str(output), "manifest": str(manifest)})
        return
    count = result["count"]
    click.echo(f"exported {count} event{'' if count == 1 else 's'} "
               f"({_describe_scope(project_id, result['mode'])}) to {output}")
    click.echo(f"manifest: {manifest}")
    click.echo(f"check it: vokter audit verify-export {output} --pubkey vokter-audit.pub")


@click.command("verify-export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pubkey", metavar="KEY", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The trail's public key, from 'vokter audit pubkey'.")
@click.option("--manifest", metavar="M", type=click.Path(dir_okay=False, path_type=Path),
              help="The export's manifest (default: FILE.manifest.json beside FILE).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_export_command(file: Path, pubkey: Path, manifest: Path | None,
                          as_json: bool) -> None:
    """Check an audit export with the public key alone: no database, no daemon.

    Checks the manifest's and its checkpoint's signatures, every row's hash and (for a whole
    chain) every link, that the rows end where the signed checkpoint says, the count, and the
    file's size and SHA-256. Any edited, removed or added row fails, naming the first bad row
    and event. Prints OK and the count, or one line naming the problem (exit 1).

    \b
    Examples:
      vokter audit verify-export p1234-audit.csv --pubkey vokter-audit.pub
      vokter audit verify-export trail.jsonl --pubkey vokter-audit.pub \\
          --manifest kept/trail.jsonl.manifest.json
    """
    report = verify_export(file, pubkey, manifest)
    if as_json:  # and on failure the one line on stderr, exit 1, as without --json
        print_json({"ok": report.ok, "file": str(file), "count": report.count,
                    "problem": report.problem, "kind": report.kind, "row": report.row,
                    "seq": report.seq})
    if not report.ok:
        raise VokterError(f"{file}: {report.problem}")
    if as_json:
        return
    described = report.manifest
    sealed = report.checkpoint
    assert described is not None and sealed is not None
    when = described.exported_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    sealed_at = sealed.time.strftime("%Y-%m-%d %H:%M:%S UTC")
    click.echo(f"OK: {report.count} event{'' if report.count == 1 else 's'} in {file}, "
               f"{_describe_scope(described.filters.project, described.mode)}; exported "
               f"{when} by {described.exported_by}; sealed by the checkpoint of {sealed_at} "
               f"(event {sealed.trail.seq}), key {sealed.key_id}")
