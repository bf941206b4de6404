"""The one seam between the socket and Vokter: ``dispatch(message, caller, services)``.

The socket layer authenticates (SO_PEERCRED) and frames; everything else happens here, so it is
tested without a socket. Every refusal and failure is audited; every state-changing handler
records its own success event inside its own transaction. Nothing a client sends can crash the
daemon: an unexpected exception becomes a logged, audited ``Failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
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
from agent.store.tables import Project

log = structlog.get_logger("vokterd.dispatch")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, as the kernel says (SO_PEERCRED); the name is looked up for people."""

    uid: int
    gid: int
    pid: int
    name: str


#: ``progress(done, total)``: tells the client how far a long request has come.
Progress = Callable[[int, int], None]


def no_progress(_done: int, _total: int) -> None:
    """Where progress goes when nobody listens (a request called without a socket)."""


@dataclass(frozen=True, slots=True)
class Attachments:
    """What came with a request besides its JSON: file descriptors the client opened with its
    own rights (SCM_RIGHTS), so the daemon never opens a path a client names, and the way back
    for progress. The socket server owns the descriptors and closes them after the request: a
    handler writes through them but never closes them (a closed number may be reused at once
    by another thread)."""

    fds: tuple[int, ...] = ()
    progress: Progress = no_progress


#: The current request's attachments, set by the socket server around ``handle`` so that the
#: seam between them keeps its plain (message, caller) shape.
_ATTACHED: ContextVar[Attachments | None] = ContextVar("vokter_attachments", default=None)


@contextmanager
def attached(attachments: Attachments) -> Iterator[None]:
    token = _ATTACHED.set(attachments)
    try:
        yield
    finally:
        _ATTACHED.reset(token)


@dataclass(slots=True)
class Concerning:
    """The project (and record) a request turned out to be about, when its arguments name only
    a record by number (``hold.release 3``): its refusal then joins that project's chain."""

    project: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    caller: Caller
    services: Services
    #: Descriptors passed with the request, as many as the operation takes (``Operation.fds``).
    fds: tuple[int, ...] = ()
    progress: Progress = no_progress
    concerning: Concerning = field(default_factory=Concerning, compare=False)

    def today(self) -> date:
        return self.services.clock.now().date()

    def concerns(self, project: str, target: str) -> None:
        """Say which project this request is about, once the handler has found it through a
        record's number. Call it only when the caller may know the project exists (an
        outsider's refusal stays out of the project's chain, so the chain does not tell them
        the record was real)."""
        self.concerning.project = project
        self.concerning.target = target

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
    #: How many file descriptors must come with the request; any other number is refused.
    fds: int = 0


def record_refusal(
    services: Services, caller: Caller, action: str, error: VokterError, project: str | None,
    target: str | None = None,
) -> None:
    """Audit a refusal in a transaction of its own (the refused change was rolled back).

    The refusal joins a project's chain only if that project exists: otherwise anyone could
    start a chain, and grow every checkpoint, by asking about made-up projects. The name they
    asked for is still recorded, as the target (or ``target``, the record asked for)."""
    context = RequestContext(caller, services)
    try:
        with services.store.write() as session:
            known = project is not None and session.get(Project, project) is not None
            context.audit(
                session,
                action,
                outcome=error.outcome,
                project=project if known else None,
                target=target or project,
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
    message: Any, caller: Caller, services: Services, operations: Mapping[str, Operation],
    attachments: Attachments | None = None,
) -> dict[str, Any]:
    """``attachments`` default to the ones the socket server set for this request."""
    extra = attachments or _ATTACHED.get() or Attachments()
    action = "request"
    project: str | None = None
    concerning = Concerning()
    try:
        envelope = parse_envelope(message)
        operation = operations.get(envelope.op)
        if operation is None:
            known = ", ".join(sorted(operations))
            raise ProtocolError(f"unknown operation '{envelope.op[:64]}' (known: {known})")
        action = envelope.op
        raw_project = envelope.args.get("project")
        project = raw_project[:32] if isinstance(raw_project, str) else None
        if len(extra.fds) != operation.fds:
            plural = "" if operation.fds == 1 else "s"
            raise ProtocolError(
                f"{envelope.op} takes {operation.fds} file descriptor{plural}; "
                f"{len(extra.fds)} came with the request")
        args: BaseModel = parse_args(operation.args, envelope.args)
        context = RequestContext(caller, services, extra.fds, extra.progress, concerning)
        result = operation.handler(context, args)
        return {"ok": True, "result": result}
    except VokterError as error:
        record_refusal(services, caller, action, error, concerning.project or project,
                       concerning.target)
        return {"ok": False, "error": error.to_wire()}
    except Exception:
        log.exception("request_failed", action=action, uid=caller.uid)
        failure = Failed("the daemon hit an internal error; nothing was changed",
                         hint="see the daemon's log")
        record_refusal(services, caller, action, failure, concerning.project or project,
                       concerning.target)
        return {"ok": False, "error": failure.to_wire()}
