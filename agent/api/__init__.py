"""The daemon's interface: wire protocol, request schemas, the client, and the offline checks
the CLI may run without a daemon. ``cli/`` imports nothing from ``agent`` but this package."""

from agent.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, UsageError, VokterError

__all__ = ["EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "UsageError", "VokterError"]
