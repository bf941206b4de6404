"""``vokter audit``: the trail's public key and checkpoints, verifying it, exporting it."""

from __future__ import annotations

import click

from cli.commands.audit_export import export, verify_export_command
from cli.commands.audit_keys import checkpoint, pubkey
from cli.commands.audit_verify import verify


@click.group()
def audit() -> None:
    """The tamper-evident audit trail: who did what, and who opened which file (A5).

    \b
    An auditor's workflow:
      vokter audit pubkey > vokter-audit.pub          # once; keep it outside the enclave
      vokter audit checkpoint > checkpoint.json       # now and then; keep it too
      vokter audit verify --project p1234 --checkpoint checkpoint.json
      vokter audit export --project p1234 --format csv -o p1234-audit.csv
      vokter audit verify-export p1234-audit.csv --pubkey vokter-audit.pub
    """


audit.add_command(pubkey)
audit.add_command(checkpoint)
audit.add_command(export)
audit.add_command(verify_export_command)
audit.add_command(verify)
