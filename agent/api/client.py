"""The client side of the socket, used by ``vokter``: one request, one answer, errors rebuilt."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

from agent.api.protocol import MAX_RESPONSE, PROTOCOL_VERSION, decode_body, read_frame, send_frame
from agent.errors import DaemonUnreachable, ProtocolError, error_from_wire

START_HINT = (
    "start it with 'systemctl start vokterd' (or 'vokterd --config FILE'), "
    "or point --socket / VOKTER_CONFIG at the socket it listens on"
)


class VokterClient:
    def __init__(self, socket_path: Path, timeout: float = 60.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        where = str(self.socket_path)
        try:
            sock.connect(where)
        except FileNotFoundError:
            sock.close()
            raise DaemonUnreachable(
                f"vokterd is not running: no socket at {where}", hint=START_HINT
            ) from None
        except ConnectionRefusedError:
            sock.close()
            raise DaemonUnreachable(
                f"vokterd is not running: nothing listens on {where}", hint=START_HINT
            ) from None
        except PermissionError:
            sock.close()
            raise DaemonUnreachable(
                f"cannot reach vokterd at {where}: permission denied",
                hint="the socket should be mode 0666; ask the operator to check vokterd",
            ) from None
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(
                f"cannot reach vokterd at {where}: {exc.strerror or exc}", hint=START_HINT
            ) from None
        return sock

    def call(self, op: str, **args: Any) -> Any:
        clean = {key: value for key, value in args.items() if value is not None}
        with self._connect() as sock:
            try:
                # The daemon may have answered already (e.g. "busy"): read the answer anyway.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    send_frame(sock, {"v": PROTOCOL_VERSION, "op": op, "args": clean})
                answer = decode_body(read_frame(sock, self.timeout, limit=MAX_RESPONSE))
            except ProtocolError as exc:
                raise DaemonUnreachable(
                    f"vokterd did not answer properly: {exc.message}",
                    hint="check the daemon's log (journalctl -u vokterd)",
                ) from None
            except OSError as exc:
                raise DaemonUnreachable(
                    f"the connection to vokterd broke: {exc.strerror or exc}",
                    hint="check the daemon's log (journalctl -u vokterd)",
                ) from None
        if not isinstance(answer, dict) or "ok" not in answer:
            raise DaemonUnreachable("vokterd sent an answer this client does not understand")
        if answer["ok"]:
            return answer.get("result")
        raise error_from_wire(answer.get("error") or {})
