"""The one seam between the socket and Vokter: ``dispatch(message, caller, services)``.

The socket layer authenticates (SO_PEERCRED) and frames; everything else happens here, so it is
tested without a socket. Every refusal and failure is audited; every state-changing handler
records its own success event inside its own transaction. Nothing a client sends can crash the
daemon: an unexpected exception becomes a logged, audited ``Failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import structlog
from pydantic import BaseModel
from sqlmodel import Session

from agent.api.schemas import Args, parse_args, parse_envelope
from agent.audit.chain import EventFields
from agent.audit.trail import append_event
from agent.errors import Failed, ProtocolError, VokterError
from agent.services import Services

log = structlog.get_logger("vokterd.dispatch")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, as the kernel says (SO_PEERCRED); the name is looked up for people."""

    uid: int
    gid: int
    pid: int
    name: str


@dataclass(frozen=True, slots=True)
class RequestContext:
    caller: Caller
    services: Services

    def today(self) -> date:
        return self.services.clock.now().date()

    def audit(
        self,
        session: Session,
        action: str,
        *,
        outcome: str = "ok",
        project: str | None = None,
        target: str | None = None,
        rule: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event in ``session``: it commits with the change or not at all."""
        append_event(
            session,
            EventFields(
                time=self.services.clock.now(),
                actor_uid=self.caller.uid,
                actor=self.caller.name,
                action=action,
                outcome=outcome,
                project_id=project,
                target=target,
                rule=rule,
                details={"pid": self.caller.pid, **(details or {})},
            ),
            mac_key=self.services.audit_keys.mac_key,
            algorithm=self.services.policies.current().audit.hash,
        )


Handler = Callable[[RequestContext, Any], Any]


@dataclass(frozen=True, slots=True)
class Operation:
    args: type[Args]
    handler: Handler


def record_refusal(
    services: Services, caller: Caller, action: str, error: VokterError, project: str | None
) -> None:
    """Audit a refusal in a transaction of its own (the refused change was rolled back)."""
    context = RequestContext(caller, services)
    try:
        with services.store.write() as session:
            context.audit(
                session,
                action,
                outcome=error.outcome,
                project=project,
                target=project,
                rule=error.rule,
                details={"error": type(error).__name__, "message": error.message[:500]},
            )
    except VokterError as audit_error:
        log.error("refusal_not_audited", action=action, error=audit_error.message)
    except Exception as audit_error:  # the daemon keeps serving even if the trail is broken
        log.error("refusal_not_audited", action=action, error=type(audit_error).__name__)
    log.info(
        "refused",
        action=action,
        uid=caller.uid,
        user=caller.name,
        project=project,
        error=type(error).__name__,
        rule=error.rule,
    )


def dispatch(
    message: Any, caller: Caller, services: Services, operations: Mapping[str, Operation]
) -> dict[str, Any]:
    action = "request"
    project: str | None = None
    try:
        envelope = parse_envelope(message)
        operation = operations.get(envelope.op)
        if operation is None:
            known = ", ".join(sorted(operations))
            raise ProtocolError(f"unknown operation '{envelope.op[:64]}' (known: {known})")
        action = envelope.op
        raw_project = envelope.args.get("project")
        project = raw_project[:32] if isinstance(raw_project, str) else None
        args: BaseModel = parse_args(operation.args, envelope.args)
        result = operation.handler(RequestContext(caller, services), args)
        return {"ok": True, "result": result}
    except VokterError as error:
        record_refusal(services, caller, action, error, project)
        return {"ok": False, "error": error.to_wire()}
    except Exception:
        log.exception("request_failed", action=action, uid=caller.uid)
        failure = Failed("the daemon hit an internal error; nothing was changed",
                         hint="see the daemon's log")
        record_refusal(services, caller, action, failure, project)
        return {"ok": False, "error": failure.to_wire()}
