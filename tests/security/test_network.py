"""Network with the default `--net none` (security-anchors B.25, B.26): the sandbox has its own
loopback, so nothing the host listens on (TCP, UDP, abstract or pathname unix sockets) is reachable.
Everything here talks to the host's loopback only.
"""
import os
import socket
import tempfile
import uuid

import pytest

from test_probe import assert_blocked, probe  # noqa: F401  (probe is a fixture)


def assert_nothing_arrived(listener):
    listener.setblocking(False)
    try:
        conn, peer = listener.accept()
    except BlockingIOError:
        return
    conn.close()
    pytest.fail(f"the host listener accepted a connection from {peer}")


def test_attack_tcp_connect_to_host_loopback_listener(probe):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        assert_blocked(probe("tcp-connect", str(port)))
        assert_nothing_arrived(listener)


def test_attack_udp_to_host_loopback_is_not_delivered(probe):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        assert_blocked(probe("udp-send", str(port)))
        receiver.setblocking(False)
        with pytest.raises(BlockingIOError):
            data = receiver.recv(64)
            pytest.fail(f"the host received a datagram from the sandbox: {data!r}")


def test_attack_host_abstract_unix_socket(probe):
    name = f"airlock-sec-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind("\0" + name)
        listener.listen(8)
        assert_blocked(probe("abstract-connect", name))
        assert_nothing_arrived(listener)


def test_attack_host_pathname_unix_sockets(probe):
    directory = tempfile.mkdtemp(prefix="airlock-sec-")
    path = os.path.join(directory, "host.sock")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            os.chmod(directory, 0o755)
            os.chmod(path, 0o777)
            listener.listen(8)
            known = ["/run/docker.sock", "/var/run/docker.sock", "/run/containerd/containerd.sock",
                     "/run/dbus/system_bus_socket", "/run/systemd/private"]
            assert_blocked(probe("unix-connect", path, *known))
            assert_nothing_arrived(listener)
    finally:
        os.unlink(path)
        os.rmdir(directory)


def test_attack_only_loopback_interface_exists(probe):
    assert_blocked(probe("interfaces"))


def test_attack_no_route_leaves_the_sandbox(run):
    completed = run(cmd=["/bin/sh", "-c", "cat /proc/net/route; echo ---; cat /proc/net/ipv6_route"])
    assert completed.returncode == 0, completed.stderr
    ipv4, _, ipv6 = completed.stdout.partition("---\n")
    devices = [line.split()[0] for line in ipv4.splitlines()[1:] if line.split()]  # Iface is the first column
    devices += [line.split()[-1] for line in ipv6.splitlines() if line.split()]  # the device is the last one
    assert all(device == "lo" for device in devices), f"routes through interfaces other than lo: {devices}"
