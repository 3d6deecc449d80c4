"""Servers run inside a sandbox by test_daemon_ports.py (python3 -c, standard library only).

argv: MODE PORT. MODE "http": an HTTP/1.1 server that answers every request with its own view of the
request as JSON (method, path, headers), `/stream` with a chunked body whose second chunk waits for
/tmp/go to exist, and `/ws` with a WebSocket echo. Every accepted connection appends a line to
/tmp/conns-PORT, so a test can tell that a refused request never reached the sandbox.
MODE "echo": a raw TCP echo server."""
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time

MODE, PORT = sys.argv[1], int(sys.argv[2])


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def ws_echo(conn, buf):
    def read(n):
        nonlocal buf
        while len(buf) < n:
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out
    while True:
        b0, b1 = read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", read(8))[0]
        mask = read(4) if b1 & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(read(n)))
        op = b0 & 0x0F
        if op == 8:
            conn.sendall(b"\x88\x00")
            return
        hdr = bytes([0x80 | op]) + (bytes([n]) if n < 126 else bytes([126]) + struct.pack(">H", n))
        conn.sendall(hdr + payload)


def serve_http(conn):
    with open(f"/tmp/conns-{PORT}", "a") as f:
        f.write("conn\n")
    buf = b""
    while True:
        head, rest = read_head(conn)
        if head is None:
            return
        lines = head.split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = [line.split(": ", 1) for line in lines[1:]]
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
        body = rest
        while len(body) < length:
            body += conn.recv(65536)
        close = any(k.lower() == "connection" and "close" in v.lower() for k, v in headers)
        if path == "/ws":
            key = next(v for k, v in headers if k.lower() == "sec-websocket-key")
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            return ws_echo(conn, body[length:])
        if path == "/stream":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
            conn.sendall(b"6\r\nfirst\n\r\n")
            while not os.path.exists("/tmp/go"):
                time.sleep(0.02)
            conn.sendall(b"7\r\nsecond\n\r\n0\r\n\r\n")
        else:
            out = json.dumps({"method": method, "path": path, "headers": headers,
                              "body": body[:length].decode("latin-1")}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(out)).encode() + b"\r\n\r\n" + out)
        if close:
            return


def serve_echo(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", PORT))
    s.listen(64)
    handler = serve_http if MODE == "http" else serve_echo
    while True:
        conn, _ = s.accept()

        def run(c=conn):
            try:
                handler(c)
            except (OSError, EOFError):
                pass
            finally:
                c.close()
        threading.Thread(target=run, daemon=True).start()


main()
