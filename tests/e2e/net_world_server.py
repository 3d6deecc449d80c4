"""The fake internet's servers, run inside the test's "world" network namespace (never anywhere else):

- HTTP on port 80 of every address: answers "hello from <the address it was reached at>".
- An echo server on TCP port 9000 (line by line), for long-lived connections.
- A DNS server on 203.0.113.53:53 (UDP and TCP), authoritative for *.test: A/AAAA records of the
  names below, TXT answers for any name, NXDOMAIN otherwise. Every query name is appended to
  QUERY_LOG, so a test can check what reached "the internet".

Standard library only. Usage: net_world_server.py QUERY_LOG READY_FILE
"""
import http.server
import socket
import socketserver
import struct
import sys
import threading

RECORDS = {
    "pypi.test": ("203.0.113.10", "2001:db8:2::10"),
    "files.pypi.test": ("203.0.113.11", None),
    "evil.test": ("203.0.113.20", None),
    "metadata.test": ("169.254.169.254", None),
    "private.test": ("10.99.0.1", None),
}
DNS_ADDRESS = "203.0.113.53"


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/bytes/"):  # /bytes/N: N zero bytes (bulk transfers)
            n = min(int(self.path[7:]), 1 << 30)
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = bytes(1 << 16)
            while n > 0:
                self.wfile.write(chunk[:min(n, len(chunk))])
                n -= min(n, len(chunk))
            return
        local = self.connection.getsockname()[0]
        local = local[7:] if local.startswith("::ffff:") else local
        body = f"hello from {local}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DualStack(socketserver.ThreadingMixIn):
    """IPv6 socket that takes IPv4 too; a thread per connection."""
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class DualStackHTTP(DualStack, http.server.HTTPServer):
    pass


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
            self.wfile.flush()


class DualStackTCP(DualStack, socketserver.TCPServer):
    pass


def read_name(packet, offset):
    labels = []
    while True:
        length = packet[offset]
        if length == 0:
            return ".".join(labels), offset + 1
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def answer(query, log_path):
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    name, end = read_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[end:end + 4])
    question = query[12:end + 4]
    with open(log_path, "a") as log:
        log.write(f"{name.lower()} {qtype}\n")
    key = name.lower().rstrip(".")
    records = []
    if qtype == 16:  # TXT: anything under .test answers, to make exfiltration observable
        text = b"exfil-ok"
        records.append(struct.pack("!HHHIH", 0xC00C, 16, 1, 60, len(text) + 1) + bytes([len(text)]) + text)
    elif key in RECORDS or key.endswith(".evil.test"):
        v4, v6 = RECORDS.get(key, ("203.0.113.20", None))
        if qtype == 1 and v4:
            records.append(struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(v4))
        if qtype == 28 and v6:
            records.append(struct.pack("!HHHIH", 0xC00C, 28, 1, 60, 16) + socket.inet_pton(socket.AF_INET6, v6))
    known = key in RECORDS or key.endswith(".evil.test") or qtype == 16
    rcode = 0 if known else 3
    header = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode, 1, len(records), 0, 0)
    return header + question + b"".join(records)


def serve_dns_udp(log_path):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((DNS_ADDRESS, 53))
    while True:
        data, peer = s.recvfrom(4096)
        try:
            s.sendto(answer(data, log_path), peer)
        except Exception:
            pass


class DnsTcp(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            (n,) = struct.unpack("!H", head)
            reply = answer(self.rfile.read(n), self.server.log_path)
            self.wfile.write(struct.pack("!H", len(reply)) + reply)


def main():
    log_path, ready = sys.argv[1], sys.argv[2]
    open(log_path, "w").close()
    http_server = DualStackHTTP(("::", 80), Hello)
    echo = DualStackTCP(("::", 9000), Echo)
    dns_tcp = socketserver.ThreadingTCPServer((DNS_ADDRESS, 53), DnsTcp)
    dns_tcp.daemon_threads = True
    dns_tcp.log_path = log_path
    for target in (http_server.serve_forever, echo.serve_forever, dns_tcp.serve_forever,
                   lambda: serve_dns_udp(log_path)):
        threading.Thread(target=target, daemon=True).start()
    with open(ready, "w") as f:
        f.write("ready\n")
    threading.Event().wait()


if __name__ == "__main__":
    main()
