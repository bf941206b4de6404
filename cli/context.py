"""What every command gets: a client for the daemon the config names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from agent.api.client import VokterClient
from agent.api.connection import resolve_socket_path


@dataclass
class CliState:
    config: str | None = None
    socket: str | None = None
    _client: VokterClient | None = field(default=None, repr=False)

    def client(self) -> VokterClient:
        if self._client is None:
            self._client = VokterClient(resolve_socket_path(self.config, self.socket))
        return self._client

    def call(self, op: str, **args: Any) -> Any:
        return self.client().call(op, **args)


pass_state = click.make_pass_decorator(CliState, ensure=True)
