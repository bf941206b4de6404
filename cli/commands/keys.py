"""vokter keys ...: the operator's view of the key store, and master-key rotation (S5)."""

from __future__ import annotations

import click

from cli.context import CliState, pass_state
from cli.output import print_fields, print_json


@click.group()
def keys() -> None:
    """The key store: master key and project keysets (root only). See docs/keys.md."""


@keys.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """Show the master key's id and source, and how many keysets are live or destroyed.

    No key bytes are ever shown: the id is a keyed hash that names the key, nothing more.

    \b
    Examples:
      sudo vokter keys status
      sudo vokter keys status --json | jq -r .master_key_id
    """
    view = state.call("keys.status")
    if as_json:
        print_json(view)
        return
    print_fields([
        ("master key id", view["master_key_id"]),
        ("source", f"{view['source']} ({view['master_key_file']})"),
        ("live keysets", view["keysets_live"]),
        ("destroyed keysets", view["keysets_destroyed"]),
        ("last rotation", view["last_rotated"] or "never"),
    ])


@keys.command("rotate-master")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_state
def rotate_master(state: CliState, as_json: bool) -> None:
    """Make a new master key and re-wrap every project keyset under it.

    Encrypted files are not touched: their keys do not change, only the key that wraps them.
    Back up the key store again afterwards: the old master key no longer opens anything.
    Refused when the master key comes from a systemd credential (rotate the credential).

    \b
    Example:
      sudo vokter keys rotate-master && sudo tar -C /etc/vokter -czf keystore.tgz keystore
    """
    result = state.call("keys.rotate_master")
    if as_json:
        print_json(result)
        return
    click.echo(f"master key rotated: {result['old_master_key_id']} -> "
               f"{result['master_key_id']}, {result['rewrapped']} keysets re-wrapped")
    click.echo("back up the key store now: the old master key no longer unwraps anything")
