"""Where the client finds the daemon: --socket, else the config's socket_path, else the default."""

from __future__ import annotations

from pathlib import Path

from agent.config import client_socket_path


def resolve_socket_path(config_file: str | None, socket_override: str | None) -> Path:
    return client_socket_path(config_file, socket_override)
