"""A minimal RFC 6455 WebSocket client (standard library only), enough for the attach endpoint:
the opening handshake with a bearer key, masked client frames, fragmentation, ping/pong and close."""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple

from . import errors
from ._http import USER_AGENT, _connect_socket

if TYPE_CHECKING:  # pragma: no cover
    from ._http import HttpClient

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HANDSHAKE = 64 * 1024
_MAX_MESSAGE = 64 * 1024 * 1024

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


class WebSocket:
    """One client connection. ``recv()`` returns ``(opcode, payload)`` for text (payload ``str``),
    binary (``bytes``) and close (``(code, reason)``) messages; pings are answered automatically.
    ``send_*`` may be called from any thread."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"", subprotocol: Optional[str] = None) -> None:
        self.sock = sock
        self.subprotocol = subprotocol
        self._buf = bytearray(buffered)
        self._send_lock = threading.Lock()
        self.closed = False
        self.close_code: Optional[int] = None
        self.close_reason = ""

    # -- handshake --------------------------------------------------------------------------------
    @classmethod
    def connect(cls, http: "HttpClient", target: str, *, subprotocols: Tuple[str, ...] = (),
                timeout: Optional[float] = 30.0, headers: Optional[Mapping[str, str]] = None) -> "WebSocket":
        """Opens ``target`` (a path with query) on the client's endpoint and upgrades it."""
        try:
            sock = _connect_socket(http.endpoint, timeout, http.ssl_context)
        except OSError as e:
            raise errors.APIConnectionError(f"cannot reach airlockd at {http.endpoint}: {e}",
                                            code="connection_error") from e
        try:
            key = base64.b64encode(os.urandom(16)).decode("ascii")
            host = http.endpoint.host
            if http.endpoint.port:
                host = f"{host}:{http.endpoint.port}"
            lines = [
                f"GET {target} HTTP/1.1",
                f"Host: {host}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                f"User-Agent: {USER_AGENT}",
            ]
            if subprotocols:
                lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
            if http.api_key:
                lines.append(f"Authorization: Bearer {http.api_key}")
            for name, value in (headers or {}).items():
                lines.append(f"{name}: {value}")
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            raw = b""
            while b"\r\n\r\n" not in raw:
                chunk = sock.recv(4096)
                if not chunk:
                    raise errors.APIConnectionError("the daemon closed the connection during the WebSocket handshake",
                                                    code="connection_error")
                raw += chunk
                if len(raw) > _MAX_HANDSHAKE:
                    raise errors.WebSocketError("WebSocket handshake answer too large", code="websocket_error")
            head, _, rest = raw.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            parts = status_line.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            hdrs = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                hdrs[name.strip().lower()] = value.strip()
            if status != 101:
                length = int(hdrs.get("content-length", "0") or 0)
                body = rest
                while len(body) < length:
                    chunk = sock.recv(length - len(body))
                    if not chunk:
                        break
                    body += chunk
                retry_after = hdrs.get("retry-after")
                raise errors.error_from_response(status or 502, body[:length] if length else body,
                                                 float(retry_after) if retry_after and retry_after.isdigit() else None)
            expected = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")
            if hdrs.get("sec-websocket-accept") != expected:
                raise errors.WebSocketError("invalid Sec-WebSocket-Accept in the handshake answer",
                                            code="websocket_error")
            sock.settimeout(None)
            return cls(sock, rest, hdrs.get("sec-websocket-protocol"))
        except socket.timeout as e:
            sock.close()
            raise errors.TimeoutError("WebSocket handshake timed out", code="request_timeout") from e
        except OSError as e:
            sock.close()
            raise errors.APIConnectionError(f"WebSocket handshake failed: {e}", code="connection_error") from e
        except BaseException:
            sock.close()
            raise

    # -- sending ----------------------------------------------------------------------------------
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header.append(0x80 | 126)
            header += struct.pack("!H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack("!Q", n)
        key = os.urandom(4)
        frame = bytes(header) + key + _mask(payload, key)
        with self._send_lock:
            if self.closed and opcode != OP_CLOSE:
                raise errors.WebSocketError("the WebSocket is closed", code="websocket_closed")
            try:
                self.sock.sendall(frame)
            except OSError as e:
                raise errors.APIConnectionError(f"WebSocket send failed: {e}", code="connection_error") from e

    def send_text(self, text: str) -> None:
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self._send_frame(OP_BINARY, bytes(data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Sends a close frame (once) and closes the socket."""
        if not self.closed:
            try:
                self._send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:120])
            except errors.AirlockError:
                pass
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # -- receiving --------------------------------------------------------------------------------
    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self._buf)))
            except OSError as e:
                if self.closed:
                    raise EOFError from e
                raise errors.APIConnectionError(f"WebSocket receive failed: {e}", code="connection_error") from e
            if not chunk:
                raise EOFError
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _read_frame(self) -> Tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        masked, n = bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        if n > _MAX_MESSAGE:
            raise errors.WebSocketError(f"WebSocket frame of {n} bytes is too large", code="websocket_error")
        key = self._read_exact(4) if masked else b""
        payload = self._read_exact(n)
        if masked:
            payload = _mask(payload, key)
        return fin, opcode, payload

    def recv(self) -> Tuple[int, Any]:
        """The next message: ``(OP_TEXT, str)``, ``(OP_BINARY, bytes)`` or ``(OP_CLOSE, (code, reason))``.
        After a close (or the connection's end, reported as close code 1006) the socket is closed."""
        message = bytearray()
        message_op: Optional[int] = None
        while True:
            try:
                fin, opcode, payload = self._read_frame()
            except EOFError:
                self.closed = True
                self.close_code = self.close_code or 1006
                self.sock.close()
                return OP_CLOSE, (self.close_code, self.close_reason)
            if opcode == OP_PING:
                try:
                    self._send_frame(OP_PONG, payload)
                except errors.AirlockError:
                    pass
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                self.close_code, self.close_reason = code, reason
                if not self.closed:
                    try:
                        self._send_frame(OP_CLOSE, payload[:2])
                    except errors.AirlockError:
                        pass
                    self.closed = True
                try:
                    self.sock.close()
                except OSError:
                    pass
                return OP_CLOSE, (code, reason)
            if opcode in (OP_TEXT, OP_BINARY):
                message_op = opcode
                message = bytearray(payload)
            elif opcode == OP_CONT and message_op is not None:
                message += payload
            else:
                raise errors.WebSocketError(f"unexpected WebSocket opcode {opcode}", code="websocket_error")
            if len(message) > _MAX_MESSAGE:
                raise errors.WebSocketError("WebSocket message too large", code="websocket_error")
            if fin:
                if message_op == OP_TEXT:
                    return OP_TEXT, bytes(message).decode("utf-8", "replace")
                return OP_BINARY, bytes(message)
