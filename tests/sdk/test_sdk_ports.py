"""Exposed ports through the SDK: create(ports=...), expose_port, get_url/get_host, create_port_token,
wait_for_port, and requests through the daemon's port proxy with the token."""
import json
import urllib.error
import urllib.request

import pytest

from airlock import errors

SERVER = ("import http.server, json\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        b = json.dumps({'path': self.path}).encode()\n"
          "        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers()\n"
          "        self.wfile.write(b)\n"
          "http.server.HTTPServer(('127.0.0.1', PORT), H).serve_forever()\n")


def serve(sb, port):
    sb.commands.run(f"python3 -c \"{SERVER.replace('PORT', str(port))}\"", background=True)


def fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_ports_end_to_end(new_sandbox):
    sb = new_sandbox(ports=[8080, {"port": 8081, "public": True}])
    assert [p["port"] for p in sb.list_ports()] == [8080, 8081]
    assert sb.wait_for_port(8080, timeout=0.2) is False
    serve(sb, 8080)
    serve(sb, 8081)
    assert sb.wait_for_port(8080, timeout=30) is True
    assert sb.wait_for_port(8081, timeout=30) is True
    url = sb.get_url(8080)
    assert url.endswith(f"/p/{sb.sandbox_id}/8080/")
    assert fetch(url + "x")[0] == 401
    token = sb.create_port_token(8080, expires_in=600)
    status, body = fetch(url + "x", {"X-Airlock-Port-Token": token["token"]})
    assert status == 200 and json.loads(body) == {"path": "/x"}
    status, body = fetch(url + f"q?airlock_token={token['token']}")
    assert status == 200 and json.loads(body) == {"path": "/q"}
    assert fetch(sb.get_url(8081))[0] == 200  # public
    sb.revoke_port_token(8080, token["token_id"])
    assert fetch(url, {"X-Airlock-Port-Token": token["token"]})[0] == 401
    with pytest.raises(errors.InvalidArgumentError):
        sb.get_host(8080)  # the daemon has no proxy domain
    p = sb.expose_port(9090, public=True)
    assert p["port"] == 9090 and p["public"] is True
    sb.unexpose_port(9090)
    with pytest.raises(errors.NotFoundError):
        sb.get_url(9090)
