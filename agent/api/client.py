"""The client side of the socket, used by ``vokter``: one request (with any file descriptors it
passes), one answer after any progress frames, errors rebuilt."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Sequence
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
        return self.call_streaming(op, **args)

    def call_streaming(
        self,
        op: str,
        *,
        fds: Sequence[int] = (),
        on_progress: Callable[[int, int], None] | None = None,
        **args: Any,
    ) -> Any:
        """``call``, passing ``fds`` (opened by the caller, with the caller's rights) with the
        request and telling ``on_progress(done, total)`` of each progress frame before the
        answer. The timeout applies to each frame, so a long export keeps the line alive."""
        clean = {key: value for key, value in args.items() if value is not None}
        with self._connect() as sock:
            try:
                # The daemon may have answered already (e.g. "busy"): read the answer anyway.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    send_frame(sock, {"v": PROTOCOL_VERSION, "op": op, "args": clean}, fds)
                answer = self._answer(sock, on_progress)
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

    def _answer(
        self, sock: socket.socket, on_progress: Callable[[int, int], None] | None
    ) -> Any:
        while True:
            frame = decode_body(read_frame(sock, self.timeout, limit=MAX_RESPONSE))
            if not (isinstance(frame, dict) and "progress" in frame and "ok" not in frame):
                return frame
            done, total = frame.get("progress"), frame.get("total")
            if on_progress is not None and isinstance(done, int) and isinstance(total, int):
                on_progress(done, total)
