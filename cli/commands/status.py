"""vokter status"""

from __future__ import annotations

from typing import Any

import click

from cli.context import CliState, pass_state
from cli.output import print_fields, print_json, warn


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _sealing(audit: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The last checkpoint and the key that signs them: an old checkpoint means a long tail of
    events nobody has signed yet."""
    if not audit:
        return []
    last = audit.get("checkpoint")
    checkpoint = (f"seq {last['seq']} at {last['time']} ({_uptime(last['age_seconds'])} ago)"
                  if last else "none yet")
    fields = [("checkpoint", checkpoint), ("audit key", audit["key_id"])]
    if audit.get("sealing") == "stopped":
        damage = audit.get("damage") or {}
        why = (f"{damage.get('kind')} at event {damage.get('seq')}" if damage
               else str(audit.get("refused", "the kept checkpoint is refused")))
        fields.append(("sealing", f"STOPPED: {why}; run 'vokter audit verify'"))
    return fields


def _storage(storage: dict[str, Any] | None) -> list[tuple[str, Any]]:
    if storage is None:
        return []
    return [("storage rules", f"watching: {storage['source']}, {storage['judged']} files "
             f"judged, {storage['violations']} violations, {storage['pending']} pending")]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """Show whether vokterd runs, and with what: version, store, policy, uptime, watchers, the
    audit trail's last signed checkpoint and the key that signs it.

    \b
    Example:
      vokter status
    """
    info = state.call("status")
    if as_json:
        print_json(info)
        return
    policy = info["policy"]
    fields = [
        ("vokterd", f"running, version {info['version']}"),
        ("uptime", _uptime(info["uptime_seconds"])),
        ("store", info["store"] + (f" ({info['database']})" if "database" in info else "")),
        ("policy", f"{policy['name']} {policy['version']}"),
        ("watchers", ", ".join(info["watchers"]) or "none active"),
        *_storage(info.get("storage")),
        ("projects you see", info["projects"]),
        *_sealing(info.get("audit")),
        ("you are", f"{info['caller']['user']} (uid {info['caller']['uid']})"),
    ]
    for key, label in (("schema_revision", "schema"), ("socket", "socket"),
                       ("zones_dir", "zones"), ("pid", "pid")):
        if key in info:
            fields.append((label, info[key]))
    print_fields(fields)
    for warning in info.get("warnings", []):
        warn(warning)
