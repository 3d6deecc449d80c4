"""A minimal RFC 6455 client (masked frames), enough to drive /attach, over any connected socket
(plain TCP or TLS). Standard library only."""
import base64
import os
import struct


class WebSocket:
    def __init__(self, sock, path, api_key):
        self.s = sock
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"Sec-WebSocket-Protocol: airlock.attach.v1\r\n"
                        f"Authorization: Bearer {api_key}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            byte = self.s.recv(1)
            if not byte:
                raise EOFError(head)
            head += byte
        self.status = int(head.split(b" ")[1])
        self.headers = head.decode()
        self.buf = b""

    def send(self, data, opcode):
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x80 | opcode])
        hdr += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """(opcode, payload) of the next frame."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)
