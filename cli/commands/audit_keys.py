"""``vokter audit pubkey`` and ``vokter audit checkpoint``: what an auditor keeps outside the
enclave to check the trail and its exports later, with no access to the daemon."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from agent.api import VokterError
from cli.context import CliState, pass_state
from cli.output import print_json


@click.command("pubkey")
@click.option("--json", "as_json", is_flag=True, help="Print the key id and the PEM as JSON.")
@pass_state
def pubkey(state: CliState, as_json: bool) -> None:
    """Print the public key that signs the trail's checkpoints and export manifests (PEM).

    Anyone may have it. Keep a copy outside the enclave: with it, 'vokter audit verify-export'
    checks an export with no database and no daemon.

    \b
    Examples:
      vokter audit pubkey > vokter-audit.pub
      vokter audit pubkey --json
    """
    result = state.call("audit.pubkey")
    if as_json:
        print_json(result)
        return
    sys.stdout.write(result["pem"])


def _summary(result: dict[str, Any]) -> str:
    projects = len(result["projects"])
    when = result["time"].replace("T", " ").split(".")[0] + " UTC"
    return (f"checkpoint {result['seq']} at {when}, {projects} "
            f"project{'' if projects == 1 else 's'}, key {result['key_id']}")


@click.command("checkpoint")
@click.option("--summary", is_flag=True,
              help="Print one line for people (sequence number, time, projects, key) instead "
                   "of the signed document.")
@click.option("--accept-damage", "accept_damage", metavar="REASON",
              help="Root only: accept the damage that stops sealing and sign the trail as it "
                   "stands from here on; recorded in the trail with REASON.")
@pass_state
def checkpoint(state: CliState, summary: bool, accept_damage: str | None) -> None:
    """Print the newest signed checkpoint of the trail (JSON), to keep (root; auditors).

    Events are first sealed up to now, so the checkpoint covers everything recorded so far.
    Kept, it proves later that the trail was not cut off or replaced by an older copy since:
    'vokter audit verify --checkpoint FILE'. It is already JSON, so there is no --json.

    If the trail is damaged, no new checkpoint can be signed: the last good one is printed,
    the damage is named on stderr and the exit code is 1.

    \b
    Examples:
      vokter audit checkpoint > checkpoint-$(date +%F).json
      vokter audit checkpoint --summary
      sudo vokter audit checkpoint --accept-damage "restored from the 2026-11-20 backup"
    """
    args = {} if accept_damage is None else {"accept_damage": accept_damage}
    result = state.call("audit.checkpoint", **args)
    if summary:
        click.echo(_summary(result))
    else:
        sys.stdout.write(json.dumps(result["document"], indent=2, sort_keys=True) + "\n")
    accepted = result.get("accepted")
    if accepted:
        click.echo(f"accepted {accepted['kind']} damage at event {accepted['seq']}; "
                   f"sealing goes on from checkpoint {result['seq']}", err=True)
    damage = result.get("damage")
    if damage:
        raise VokterError(
            f"the trail is damaged ({damage['kind']} at event {damage['seq']}): "
            f"{damage['message']}; printed the last good checkpoint ({result['seq']})",
            rule="A5", hint="run 'vokter audit verify'",
        )
