"""The daemon's and the client's settings: one TOML file, named by ``--config`` or
``VOKTER_CONFIG``.

Both programs read the same file so that a user's ``vokter`` finds the socket the operator's
``vokterd`` listens on without being told twice. Unknown keys are errors: a misspelt
``zone_dir`` silently falling back to a default would put research data somewhere nobody meant.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/vokter/vokter.toml")
DEFAULT_SOCKET_PATH = Path("/run/vokter/vokterd.sock")
MAX_CONFIG_BYTES = 256 * 1024

_PATH_KEYS = ("state_dir", "socket_path", "key_store", "policies_dir", "zones_dir", "clock_file")
_KNOWN_KEYS = {
    *_PATH_KEYS,
    "database_url",
    "policy",
    "log_level",
    "max_clients",
    "request_timeout",
    "access_log_source",
}
_LOG_LEVELS = ("debug", "info", "warning", "error")
#: Where the data-access log (A5) hears of opens: "auto" takes the fanotify gate when it runs
#: and inotify otherwise; "inotify" always takes inotify (who opened is then unknown).
ACCESS_LOG_SOURCES = ("auto", "fanotify", "inotify")


@dataclass(frozen=True, slots=True)
class Config:
    state_dir: Path = Path("/var/lib/vokter")
    database_url: str = ""
    socket_path: Path = DEFAULT_SOCKET_PATH
    key_store: Path = Path("/etc/vokter/keystore")
    #: None means the policy shipped with Vokter (policies/default.toml).
    policies_dir: Path | None = None
    zones_dir: Path = Path("/srv/vokter")
    policy: str = "default"
    log_level: str = "info"
    max_clients: int = 64
    request_timeout: float = 5.0
    access_log_source: str = "auto"
    #: Drills and tests only: the daemon's date is read from this file (agent.clock.FileClock).
    clock_file: Path | None = None

    @property
    def effective_database_url(self) -> str:
        """SQLite under ``state_dir`` unless the operator named another database."""
        return self.database_url or f"sqlite:///{self.state_dir / 'vokter.db'}"


def config_path_from_env(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("VOKTER_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def parse_config(text: str, source: str = "config") -> Config:
    """Validate the TOML text of a config file; every problem is named in one error."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _KNOWN_KEYS:
            problems.append(f"{key}: unknown key")
            continue
        if key in _PATH_KEYS:
            if not isinstance(value, str) or not value.startswith("/"):
                problems.append(f"{key}: must be an absolute path")
                continue
            values[key] = Path(os.path.normpath(value))
        elif key in ("database_url", "policy", "log_level", "access_log_source"):
            if not isinstance(value, str):
                problems.append(f"{key}: must be a string")
                continue
            values[key] = value
        elif key == "max_clients":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
                problems.append(f"{key}: must be a whole number from 1 to 1024")
                continue
            values[key] = value
        elif key == "request_timeout":
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0.1 <= value <= 300
            ):
                problems.append(f"{key}: must be a number of seconds from 0.1 to 300")
                continue
            values[key] = float(value)
    if "log_level" in values and values["log_level"] not in _LOG_LEVELS:
        problems.append(f"log_level: must be one of {', '.join(_LOG_LEVELS)}")
    if values.get("access_log_source", "auto") not in ACCESS_LOG_SOURCES:
        problems.append(f"access_log_source: must be one of {', '.join(ACCESS_LOG_SOURCES)}")
    url = values.get("database_url", "")
    if url and not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
        problems.append("database_url: must start with sqlite:/// or postgresql+psycopg://")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return Config(**values)


def load_config(path: Path) -> Config:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; is it a config file?")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file",
            hint="pass --config FILE or set VOKTER_CONFIG (see docs/operations.md)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.__class__.__name__}") from None
    return parse_config(text, source=str(path))


def client_socket_path(config_file: str | None, socket_override: str | None) -> Path:
    """Where the client connects: --socket, else the config's socket_path, else the default.

    A client without a readable config still reaches the standard socket, so ordinary users
    need no file of their own.
    """
    if socket_override:
        return Path(socket_override)
    path = config_path_from_env(config_file)
    if config_file or os.environ.get("VOKTER_CONFIG") or path.exists():
        return load_config(path).socket_path
    return DEFAULT_SOCKET_PATH
