"""stomp.py over TLS (Python's ssl module, that is OpenSSL, verifying the certificate and the
host name) against a real stompede server's `--stomps` listener.

The certificate is self-signed, made by the Rust harness (tests/interop.rs) and named by
INTEROP_TLS_CERT and INTEROP_TLS_KEY: without them these tests fail, they never skip."""

from __future__ import annotations

import os
import ssl
import socket

import pytest

from conftest import Client, StompedeServer, WAIT_S


def tls_files():
    cert, key = os.environ.get("INTEROP_TLS_CERT"), os.environ.get("INTEROP_TLS_KEY")
    assert cert and key, (
        "INTEROP_TLS_CERT and INTEROP_TLS_KEY must name a certificate and its key "
        "(cargo test --test interop makes them)"
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_server():
    s = StompedeServer(users=["alice:s3cret", "bob:hunter2"], tls=tls_files())
    yield s
    s.cleanup()


@pytest.fixture
def tls_clients():
    """Factory: tls_clients(server, name, login, passcode, tls=True) -> connected Client."""
    made: list[Client] = []
    cert, _ = tls_files()

    def make(server, name, login, passcode, tls=True):
        c = Client(server, name, login=login, passcode=passcode, ca_file=cert if tls else None)
        made.append(c)
        c.connect()
        return c

    yield make
    for c in made:
        c.close()


def test_stomppy_over_tls_subscribes_sends_and_receives(tls_server, tls_clients):
    sub = tls_clients(tls_server, "tls-sub", "alice", "s3cret")
    pub = tls_clients(tls_server, "tls-pub", "bob", "hunter2")
    assert sub.conn.transport.socket.version() in ("TLSv1.2", "TLSv1.3")
    sub.subscribe("/topic/py.tls", "t-1")
    body = "über TLS ✓"
    pub.send("/topic/py.tls", body, **{"content-type": "text/plain;charset=utf-8"})
    m = sub.listener.next_message()
    assert m.body == body
    assert m.headers["subscription"] == "t-1"
    # A large body spans many TLS records, both ways.
    large = "x" * 300_000
    pub.send("/topic/py.tls", large)
    assert sub.listener.next_message().body == large
    # A plain-TCP publisher reaches the TLS subscriber: one broker behind both listeners.
    plain = tls_clients(tls_server, "plain-pub", "bob", "hunter2", tls=False)
    plain.send("/topic/py.tls", "from plain TCP")
    assert sub.listener.next_message().body == "from plain TCP"
    sub.listener.expect_none()


def test_stomppy_over_tls_acks_queue_messages_and_disconnects_cleanly(tls_server, tls_clients):
    consumer = tls_clients(tls_server, "tls-consumer", "alice", "s3cret")
    producer = tls_clients(tls_server, "tls-producer", "bob", "hunter2")
    consumer.subscribe("/queue/py.tls", "q-1", ack="client-individual")
    for i in range(3):
        producer.send("/queue/py.tls", f"job {i}", persistent="true")
    got = consumer.listener.take(3)
    assert [m.body for m in got] == ["job 0", "job 1", "job 2"]
    for m in got:
        consumer.ack(m)
    receipt = consumer.disconnect()
    assert receipt.cmd == "RECEIPT"


def test_plain_stomp_on_the_tls_port_is_cut_off(tls_server, tls_clients):
    sub = tls_clients(tls_server, "tls-calm", "alice", "s3cret")
    sub.subscribe("/topic/py.calm", "c-1")
    raw = socket.create_connection((tls_server.host, tls_server.tls_port), timeout=WAIT_S)
    raw.sendall(b"CONNECT\naccept-version:1.2\nlogin:alice\npasscode:s3cret\n\n\x00")
    received = b""
    while chunk := raw.recv(4096):
        received += chunk
    raw.close()
    assert b"CONNECTED" not in received
    # A client that does not trust the certificate gets no session either.
    context = ssl.create_default_context()
    with socket.create_connection((tls_server.host, tls_server.tls_port), timeout=WAIT_S) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(s, server_hostname="127.0.0.1")
    pub = tls_clients(tls_server, "tls-after", "bob", "hunter2")
    pub.send("/topic/py.calm", "still here")
    assert sub.listener.next_message().body == "still here"
