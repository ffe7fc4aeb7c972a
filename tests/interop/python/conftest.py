"""Plumbing for the stomp.py interop tests: a real `stompede serve` process on port 0, and
stomp.py connections whose frames land in a listener that tests wait on with bounded timeouts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque

import pytest
import stomp
import stomp.protocol

#: Longest any single wait may take before the test fails.
WAIT_S = 10.0
#: How long we watch for a frame that must NOT arrive.
QUIET_S = 0.5


def server_env():
    """Our environment minus `STOMPEDE_*` settings (the binary reads them as defaults for its
    flags), except `STOMPEDE_LOG`, which is handy when debugging a failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOMPEDE_") or k == "STOMPEDE_LOG"}
    env["RUST_BACKTRACE"] = "1"
    env["NO_COLOR"] = "1"
    return env


class StompedeServer:
    """One `stompede serve` child process."""

    def __init__(self, users=(), heartbeat=None, config=None, tls=None):
        bin_path = os.environ.get("STOMPEDE_BIN")
        if not bin_path:
            raise RuntimeError(
                "STOMPEDE_BIN is not set: it must point at the stompede binary "
                "(scripts/test.sh and `cargo test --test interop` set it)"
            )
        self.data_dir = tempfile.mkdtemp(prefix="stompede-interop-py-")
        args = [
            bin_path, "serve",
            "--data-dir", self.data_dir,
            "--stomp", "127.0.0.1:0",
            "--http", "127.0.0.1:0",
        ]
        if tls is not None:
            # (certificate file, key file): STOMP over TLS on a port of its own too.
            cert_file, key_file = tls
            args += ["--stomps", "127.0.0.1:0", "--tls-cert", cert_file, "--tls-key", key_file]
        for user in users:
            args += ["--user", user]
        if heartbeat:
            args += ["--heartbeat", heartbeat]
        if config is not None:
            # TOML, in its own file beside (not inside) the data dir
            config_path = self.data_dir + ".config.toml"
            with open(config_path, "w", encoding="utf-8") as f:
                f.write(config)
            self.config_path = config_path
            args += ["--config", config_path]
        else:
            self.config_path = None
        self.args = args
        self.stderr_lines: deque[str] = deque(maxlen=2000)
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=server_env(),
        )
        threading.Thread(target=self._pump_stderr, daemon=True).start()

        line_box: list[bytes] = []
        got_line = threading.Event()

        def read_first_line():
            line_box.append(self.proc.stdout.readline())
            got_line.set()
            # Anything more on stdout breaks the one-line contract: keep it visible.
            for extra in self.proc.stdout:
                self.stderr_lines.append("[unexpected stdout] " + extra.decode("utf-8", "replace").rstrip())

        threading.Thread(target=read_first_line, daemon=True).start()
        if not got_line.wait(WAIT_S) or not line_box[0]:
            exited = self.proc.poll()
            self.cleanup()
            why = (
                f"exited with code {exited} before printing its listening line"
                if exited is not None
                else f"printed no listening line within {WAIT_S}s"
            )
            raise RuntimeError(
                f"stompede {why}\ncommand: {' '.join(args)}\n"
                f"--- server stderr ---\n{self.stderr_tail()}"
            )
        line = line_box[0].decode("utf-8", "replace").strip()
        try:
            self.listening = json.loads(line)
        except json.JSONDecodeError as exc:
            self.cleanup()
            raise RuntimeError(f"first stdout line is not JSON: {line!r}") from exc
        if self.listening.get("event") != "listening" or "stomp" not in self.listening:
            self.cleanup()
            raise RuntimeError(f"unexpected listening line: {line!r}")
        host, port = self.listening["stomp"].rsplit(":", 1)
        self.host, self.port = host, int(port)
        if self.listening.get("stomps"):
            _, tls_port = self.listening["stomps"].rsplit(":", 1)
            self.tls_port = int(tls_port)

    def _pump_stderr(self):
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip())

    def stderr_tail(self, lines=80) -> str:
        time.sleep(0.05)  # let the pump catch up
        return "\n".join(list(self.stderr_lines)[-lines:])

    def stop(self, timeout=5.0):
        """SIGTERM, wait, SIGKILL if needed. Returns the exit code (negative for a signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.config_path:
            try:
                os.remove(self.config_path)
            except FileNotFoundError:
                pass


class Collector(stomp.ConnectionListener):
    """Collects every frame a connection receives; tests wait on it with bounded timeouts."""

    def __init__(self, name):
        self.name = name
        self.cond = threading.Condition()
        self.messages: list = []  # MESSAGE frames not yet taken
        self.receipts: dict[str, object] = {}
        self.errors: list = []
        self.connected_frames: list = []
        self.connected = threading.Event()
        self.errored = threading.Event()
        self.disconnected = threading.Event()

    # stomp.py callbacks (run on its receiver thread)
    def on_connected(self, frame):
        with self.cond:
            self.connected_frames.append(frame)
            self.cond.notify_all()
        self.connected.set()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts[frame.headers.get("receipt-id")] = frame
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()
        self.errored.set()

    def on_disconnected(self):
        self.disconnected.set()
        with self.cond:
            self.cond.notify_all()

    # waits
    def wait_receipt(self, receipt_id, timeout=WAIT_S):
        with self.cond:
            if not self.cond.wait_for(lambda: receipt_id in self.receipts or self.errors, timeout):
                raise AssertionError(f"{self.name}: no RECEIPT {receipt_id} within {timeout}s")
            if receipt_id not in self.receipts:
                raise AssertionError(f"{self.name}: ERROR instead of RECEIPT {receipt_id}: {describe(self.errors[0])}")
            return self.receipts[receipt_id]

    def next_message(self, timeout=WAIT_S, where=None):
        """Take the next MESSAGE (optionally the next one whose subscription is `where`)."""
        def pick():
            for i, m in enumerate(self.messages):
                if where is None or m.headers.get("subscription") == where:
                    return i
            return None

        with self.cond:
            if not self.cond.wait_for(lambda: pick() is not None, timeout):
                raise AssertionError(
                    f"{self.name}: no MESSAGE{' on ' + where if where else ''} within {timeout}s"
                    f" (errors: {[describe(e) for e in self.errors]})"
                )
            return self.messages.pop(pick())

    def take(self, n, timeout=WAIT_S, where=None):
        deadline = time.monotonic() + timeout
        return [self.next_message(max(0.01, deadline - time.monotonic()), where) for _ in range(n)]

    def expect_none(self, quiet=QUIET_S):
        time.sleep(quiet)
        with self.cond:
            assert not self.messages, (
                f"{self.name}: expected no MESSAGE, got {len(self.messages)}: {describe(self.messages[0])}"
            )


def describe(frame) -> str:
    return f"{frame.cmd} {frame.headers} body={frame.body!r}"


class Client:
    """A stomp.py 1.2 connection over plain TCP (or, given `ca_file`, over TLS to the server's
    `stomps` port, trusting that file's certificates) plus its Collector."""

    def __init__(self, server: StompedeServer, name, login=None, passcode=None, auto_decode=True,
                 ca_file=None):
        self.name = name
        self.login = login
        self.passcode = passcode
        host_and_port = (server.host, server.tls_port if ca_file else server.port)
        self.conn = stomp.Connection12(
            [host_and_port],
            heartbeats=(0, 0),
            reconnect_attempts_max=1,
            auto_decode=auto_decode,
        )
        if ca_file:
            # Python's ssl (OpenSSL), verifying the certificate and the host name.
            self.conn.set_ssl(for_hosts=[host_and_port], ca_certs=ca_file)
        self.listener = Collector(name)
        self.conn.set_listener("collector", self.listener)

    def connect(self, with_connect_command=False, expect_error=False):
        """Send STOMP (stomp.py's default) or CONNECT and wait for CONNECTED or ERROR."""
        self.conn.connect(
            self.login, self.passcode, wait=False, with_connect_command=with_connect_command
        )
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.listener.connected.is_set() or self.listener.errored.is_set():
                break
            time.sleep(0.01)
        if expect_error:
            assert self.listener.errored.is_set(), f"{self.name}: expected ERROR, got " + (
                "CONNECTED" if self.listener.connected.is_set() else f"nothing within {WAIT_S}s"
            )
            return self.listener.errors[0]
        if not self.listener.connected.is_set():
            errors = [describe(e) for e in self.listener.errors]
            raise AssertionError(f"{self.name}: not CONNECTED within {WAIT_S}s (errors: {errors})")
        return self.listener.connected_frames[0]

    def _receipt(self, prefix):
        return f"{prefix}-{self.name}-{uuid.uuid4().hex[:8]}"

    def subscribe(self, destination, sub_id, ack="auto", **headers):
        rid = self._receipt("sub")
        self.conn.subscribe(destination, id=sub_id, ack=ack, receipt=rid, headers=headers)
        self.listener.wait_receipt(rid)
        return sub_id

    def unsubscribe(self, sub_id):
        rid = self._receipt("unsub")
        self.conn.unsubscribe(sub_id, receipt=rid)
        return self.listener.wait_receipt(rid)

    def send(self, destination, body, **headers):
        """SEND with a receipt and wait for it."""
        rid = self._receipt("send")
        self.conn.send(destination, body, headers={**headers, "receipt": rid})
        return self.listener.wait_receipt(rid)

    def send_unreceipted(self, destination, body, **headers):
        """SEND without a receipt (inside a transaction the receipt question is left open)."""
        self.conn.send(destination, body, headers=headers)

    def ack(self, message, transaction=None, receipt=True):
        if not receipt:
            self.conn.ack(message.headers["ack"], transaction=transaction)
            return None
        rid = self._receipt("ack")
        self.conn.ack(message.headers["ack"], transaction=transaction, receipt=rid)
        return self.listener.wait_receipt(rid)

    def nack(self, message, transaction=None):
        rid = self._receipt("nack")
        self.conn.nack(message.headers["ack"], transaction=transaction, receipt=rid)
        return self.listener.wait_receipt(rid)

    def begin(self, tx):
        rid = self._receipt("begin")
        self.conn.begin(tx, receipt=rid)
        return self.listener.wait_receipt(rid)

    def commit(self, tx):
        rid = self._receipt("commit")
        self.conn.commit(tx, receipt=rid)
        return self.listener.wait_receipt(rid)

    def abort(self, tx):
        rid = self._receipt("abort")
        self.conn.abort(tx, receipt=rid)
        return self.listener.wait_receipt(rid)

    def disconnect(self):
        """DISCONNECT with a receipt; returns the RECEIPT once the socket is closed."""
        rid = self._receipt("bye")
        # Protocol12.disconnect, not Connection12.disconnect: the latter then blocks unbounded.
        stomp.protocol.Protocol12.disconnect(self.conn, receipt=rid)
        frame = self.listener.wait_receipt(rid)
        assert self.listener.disconnected.wait(WAIT_S), f"{self.name}: socket not closed after DISCONNECT"
        return frame

    def close(self):
        """Cleanup: drop the socket whatever state it is in."""
        try:
            if self.conn.is_connected():
                self.conn.transport.disconnect_socket()
            else:
                self.conn.transport.running = False
                self.conn.transport.disconnect_socket()
        except Exception:  # cleanup only
            pass


@pytest.fixture(scope="module")
def server(request):
    """One open-mode server for the whole test module."""
    s = StompedeServer()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def auth_server(request):
    """A server with two configured users."""
    s = StompedeServer(users=["alice:s3cret", "bob:hunter2"])
    yield s
    s.cleanup()


@pytest.fixture
def clients():
    """Factory: clients(server, name, login=..., passcode=...) -> Client; all closed afterwards."""
    made: list[Client] = []

    def make(server, name, login=None, passcode=None, connect=True, auto_decode=True):
        c = Client(server, name, login=login if login is not None else name, passcode=passcode or "pw",
                   auto_decode=auto_decode)
        made.append(c)
        if connect:
            c.connect()
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="module")
def acl_server(request):
    """Open mode plus an [[acl]] rule letting anyone send to anyone's /user/... destinations."""
    s = StompedeServer(config='[[acl]]\nuser = "*"\ndestination = "/user/**"\nread = true\nwrite = true\n')
    yield s
    s.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the servers' stderr to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in ("server", "auth_server", "acl_server"):
            s = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(s, StompedeServer):
                report.sections.append((f"stompede stderr ({name})", s.stderr_tail()))
