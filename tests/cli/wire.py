"""A real socket server answering with the wire contract of operations whose daemon side is
elsewhere: the request schemas below are the contract's arguments (unknown or missing fields are
refused, as the daemon refuses them), the handlers return contract results given by the test.

This tests the client against the contract: what the CLI sends and how it renders what comes
back. It is not a test of the daemon's handlers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from agent.access.users import name_of_uid
from agent.api.dispatch import Operation, RequestContext, dispatch, record_refusal
from agent.api.schemas import Args
from agent.api.server import SocketServer
from agent.services import Services

Role = Literal["member", "key_custodian", "auditor"]
Text = Annotated[str, Field(min_length=1)]


class MemberAdd(Args):
    project: Text
    user: Text
    role: Role
    expires: str | None = None
    reason: Text


class MemberRemove(Args):
    project: Text
    user: Text
    role: Role | None = None
    reason: Text
    terminate: bool


class ProjectOnly(Args):
    project: Text


class Review(Args):
    project: Text | None = None


SCHEMAS: dict[str, type[Args]] = {
    "member.add": MemberAdd,
    "member.remove": MemberRemove,
    "member.list": ProjectOnly,
    "access.review": Review,
    "access.check": ProjectOnly,
}

#: op -> what to answer: a result, or a callable given the parsed args (it may raise).
Answer = Any | Callable[[Args], Any]


@dataclass
class ContractDaemon:
    path: Path
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@contextmanager
def contract_daemon(services: Services, directory: Path,
                    answers: Mapping[str, Answer]) -> Iterator[ContractDaemon]:
    running = ContractDaemon(directory / f"contract-{uuid.uuid4().hex[:8]}.sock")

    def handler(op: str) -> Callable[[RequestContext, Args], Any]:
        def handle(_context: RequestContext, args: Args) -> Any:
            running.calls.append((op, args.model_dump(exclude_unset=True)))
            answer = answers[op]
            return answer(args) if callable(answer) else answer
        return handle

    operations = {op: Operation(SCHEMAS[op], handler(op)) for op in answers}
    server = SocketServer(
        running.path,
        handle=lambda message, caller: dispatch(message, caller, services, operations),
        refuse=lambda caller, error: record_refusal(services, caller, "request", error, None),
        name_of=name_of_uid,
        timeout=1.0,
    )
    server.start()
    try:
        yield running
    finally:
        server.stop()
