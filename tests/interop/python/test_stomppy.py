"""stomp.py (STOMP 1.2 over plain TCP) against a real stompede server.

The module shares one open-mode server (fixture `server`), one with configured users
(`auth_server`) and one with an `[[acl]]` rule (`acl_server`); every test uses its own
destinations so they do not interfere."""

from __future__ import annotations

import time

from conftest import Client


def test_connect_with_login_negotiates_1_2(server, clients):
    # stomp.py sends the STOMP command by default.
    c = clients(server, "alice", connect=False)
    frame = c.connect()
    assert frame.cmd == "CONNECTED"
    assert frame.headers.get("version") == "1.2"
    assert not c.listener.errors

    # The classic CONNECT command works the same.
    d = clients(server, "bob", connect=False)
    frame = d.connect(with_connect_command=True)
    assert frame.headers.get("version") == "1.2"


def test_subscribe_send_receive_headers(server, clients):
    sub = clients(server, "sub")
    pub = clients(server, "pub")
    sub.subscribe("/topic/py.greetings", "s-1")

    body = "grüße ✓"
    receipt = pub.send(
        "/topic/py.greetings",
        body,
        **{"content-type": "text/plain;charset=utf-8", "x-trace": "py-42", "x-tricky": "a:b\\c"},
    )
    assert receipt.cmd == "RECEIPT"

    m = sub.listener.next_message()
    assert m.cmd == "MESSAGE"
    assert m.body == body
    h = m.headers
    assert h["destination"] == "/topic/py.greetings"
    assert h["subscription"] == "s-1"
    assert h.get("message-id"), "message-id header"
    assert h["content-length"] == str(len(body.encode("utf-8")))
    assert h["content-type"] == "text/plain;charset=utf-8"
    assert h["x-trace"] == "py-42"
    assert h["x-tricky"] == "a:b\\c", "STOMP 1.2 header escaping round trip"
    assert "receipt" not in h, "the SEND receipt header is not forwarded"
    sub.listener.expect_none()


def test_binary_body_round_trips_over_tcp(server, clients):
    sub = clients(server, "bin-sub", auto_decode=False)
    pub = clients(server, "bin-pub", auto_decode=False)
    sub.subscribe("/topic/py.binary", "b-1")
    payload = bytes(range(256)) * 4
    pub.send("/topic/py.binary", payload, **{"content-type": "application/octet-stream"})
    m = sub.listener.next_message()
    assert m.headers["content-length"] == str(len(payload))
    assert m.body == payload


def test_receipts_and_unsubscribe(server, clients):
    c = clients(server, "receipts")
    c.subscribe("/topic/py.receipts", "r-1")
    r = c.send("/topic/py.receipts", "one")
    assert r.cmd == "RECEIPT"
    assert c.listener.next_message().body == "one"

    r = c.unsubscribe("r-1")
    assert r.cmd == "RECEIPT"
    c.send("/topic/py.receipts", "two")
    c.listener.expect_none()

    r = c.disconnect()
    assert r.cmd == "RECEIPT"


def test_queue_client_individual_ack_and_nack_redelivery(server, clients):
    consumer = clients(server, "consumer")
    producer = clients(server, "producer")
    consumer.subscribe("/queue/py.work", "q-1", ack="client-individual")

    producer.send("/queue/py.work", "m1", **{"x-n": "1"})
    producer.send("/queue/py.work", "m2", **{"x-n": "2"})
    m1, m2 = consumer.listener.take(2)
    assert [m1.body, m2.body] == ["m1", "m2"]
    for m in (m1, m2):
        assert m.headers.get("ack"), "client-individual MESSAGE carries an ack header"
        assert m.headers["subscription"] == "q-1"
        assert m.headers["destination"] == "/queue/py.work"
        assert m.headers.get("redelivered", "false") != "true"

    consumer.ack(m2)
    consumer.nack(m1)
    again = consumer.listener.next_message()
    assert again.body == "m1"
    assert again.headers.get("redelivered") == "true"
    assert again.headers["x-n"] == "1"
    consumer.ack(again)
    consumer.listener.expect_none()

    # All acknowledged: a later consumer gets nothing.
    consumer.disconnect()
    later = clients(server, "later")
    later.subscribe("/queue/py.work", "q-2", ack="client-individual")
    later.listener.expect_none()


def test_queue_unacked_message_redelivered_after_disconnect(server, clients):
    producer = clients(server, "producer")
    first = clients(server, "first")
    first.subscribe("/queue/py.redeliver", "f-1", ack="client-individual")
    producer.send("/queue/py.redeliver", "u1")
    assert first.listener.next_message().body == "u1"
    first.disconnect()

    second = clients(server, "second")
    second.subscribe("/queue/py.redeliver", "s-1", ack="client-individual")
    m = second.listener.next_message()
    assert m.body == "u1"
    assert m.headers.get("redelivered") == "true"
    second.ack(m)


def test_transaction_commit_delivers_and_abort_discards(server, clients):
    sub = clients(server, "tx-sub")
    pub = clients(server, "tx-pub")
    sub.subscribe("/queue/py.tx", "t-1")

    pub.begin("tx-1")
    pub.send_unreceipted("/queue/py.tx", "in-tx-1", transaction="tx-1")
    pub.send_unreceipted("/queue/py.tx", "in-tx-2", transaction="tx-1")
    pub.send("/topic/py.tx-barrier", "barrier")  # frames are processed in order: a barrier
    sub.listener.expect_none()  # nothing before COMMIT
    pub.commit("tx-1")
    assert [m.body for m in sub.listener.take(2)] == ["in-tx-1", "in-tx-2"]

    pub.begin("tx-2")
    pub.send_unreceipted("/queue/py.tx", "aborted", transaction="tx-2")
    pub.abort("tx-2")
    pub.send("/queue/py.tx", "after-abort")
    assert sub.listener.next_message().body == "after-abort"
    sub.listener.expect_none()
    assert not pub.listener.errors


def test_transaction_acks_take_effect_on_commit_only(server, clients):
    producer = clients(server, "producer")
    consumer = clients(server, "consumer")
    consumer.subscribe("/queue/py.txack", "a-1", ack="client-individual")
    producer.send("/queue/py.txack", "k1")
    producer.send("/queue/py.txack", "k2")
    k1, k2 = consumer.listener.take(2)

    # ACK k1 inside an aborted transaction: the ack is void.
    consumer.begin("tx-ack-abort")
    consumer.ack(k1, transaction="tx-ack-abort", receipt=False)
    consumer.abort("tx-ack-abort")
    # ACK k2 inside a committed transaction: it sticks.
    consumer.begin("tx-ack-commit")
    consumer.ack(k2, transaction="tx-ack-commit", receipt=False)
    consumer.commit("tx-ack-commit")
    consumer.disconnect()

    other = clients(server, "other")
    other.subscribe("/queue/py.txack", "a-2", ack="client-individual")
    m = other.listener.next_message()
    assert m.body == "k1", "the message acked in the aborted transaction comes back"
    assert m.headers.get("redelivered") == "true"
    other.ack(m)
    other.listener.expect_none()  # k2 was acknowledged by the commit


def test_queue_competing_consumers_round_robin(server, clients):
    workers = [clients(server, f"w{i}") for i in range(3)]
    for i, w in enumerate(workers):
        w.subscribe("/queue/py.rr", f"rr-{i}")
    producer = clients(server, "producer")
    for n in range(6):
        producer.send("/queue/py.rr", f"job-{n}")
    got = {}
    for i, w in enumerate(workers):
        for m in w.listener.take(2):
            assert m.body not in got, f"{m.body} delivered twice"
            got[m.body] = i
        w.listener.expect_none(0.1)
    order = [got[f"job-{n}"] for n in range(6)]
    assert len(set(order[:3])) == 3, f"round robin assignment {order}"
    assert order[3:] == order[:3], f"round robin assignment {order}"


def test_user_destinations_reach_every_session_of_that_user(server, clients):
    alice = clients(server, "alice")
    alice2 = clients(server, "alice")
    alice_sender = clients(server, "alice")
    bob = clients(server, "bob")
    alice.subscribe("/user/queue/x", "ua")
    alice2.subscribe("/user/queue/x", "ua2")
    bob.subscribe("/user/queue/x", "ub")

    alice_sender.send("/user/alice/queue/x", "hi alice")
    for c, sub_id in ((alice, "ua"), (alice2, "ua2")):
        m = c.listener.next_message()
        assert m.body == "hi alice"
        assert m.headers["subscription"] == sub_id
        assert m.headers["destination"] == "/user/queue/x"
    bob.listener.expect_none()

    bob.send("/user/bob/queue/x", "hi bob")
    assert bob.listener.next_message().body == "hi bob"
    alice.listener.expect_none()
    alice2.listener.expect_none(0.1)


def test_user_destinations_of_another_user_are_refused_by_default(server, clients):
    alice = clients(server, "alice")
    carol = clients(server, "carol")
    alice.subscribe("/user/queue/x", "ua")
    rid = "send-carol-to-alice"
    carol.conn.send("/user/alice/queue/x", "not yours", headers={"receipt": rid})
    assert carol.listener.errored.wait(10), "carol's SEND to alice's user destination must get an ERROR"
    err = carol.listener.errors[0]
    assert err.headers.get("receipt-id") == rid
    assert err.headers.get("message")
    assert rid not in carol.listener.receipts
    assert carol.listener.disconnected.wait(10), "the server closes the connection after the ERROR"
    alice.listener.expect_none()


def test_user_destinations_with_acl_rule_another_user_sends(acl_server, clients):
    alice = clients(acl_server, "alice")
    bob = clients(acl_server, "bob")
    carol = clients(acl_server, "carol")
    alice.subscribe("/user/queue/x", "ua")
    bob.subscribe("/user/queue/x", "ub")

    carol.send("/user/alice/queue/x", "hi alice", **{"x-from": "carol"})
    m = alice.listener.next_message()
    assert m.body == "hi alice"
    assert m.headers["x-from"] == "carol"
    assert m.headers["subscription"] == "ua"
    bob.listener.expect_none()

    carol.send("/user/bob/queue/x", "hi bob")
    assert bob.listener.next_message().body == "hi bob"
    alice.listener.expect_none()


def test_wrong_password_gets_error(auth_server):
    bad = Client(auth_server, "alice-bad", login="alice", passcode="wrong")
    try:
        err = bad.connect(expect_error=True)
        assert err.cmd == "ERROR"
        assert err.headers.get("message"), "ERROR carries a message header"
        assert not bad.listener.connected.is_set(), "must not be CONNECTED"
        assert bad.listener.disconnected.wait(10), "server closes the connection after the ERROR"
    finally:
        bad.close()

    unknown = Client(auth_server, "mallory", login="mallory", passcode="s3cret")
    try:
        unknown.connect(expect_error=True)
        assert unknown.listener.disconnected.wait(10)
    finally:
        unknown.close()

    good = Client(auth_server, "alice", login="alice", passcode="s3cret")
    try:
        frame = good.connect()
        assert frame.headers.get("version") == "1.2"
        good.subscribe("/topic/py.auth", "x-1")
        good.send("/topic/py.auth", "authenticated")
        assert good.listener.next_message().body == "authenticated"
    finally:
        good.close()


def test_a_consumer_acking_each_message_with_a_receipt_drains_a_backlog(server, clients):
    """stomp.py calls listeners on its receiving thread, so a listener that ACKs with a receipt
    stops that thread reading while its ACK waits to be written. Each ACK then brings the server
    two frames to send (its RECEIPT and the next MESSAGE) for the one frame the client reads: the
    server must pace such a session, not cut it off as a slow consumer (issue #26: the rest of
    the queue stayed stored but never reached the consumer)."""
    import threading
    import time

    import stomp

    backlog = 3000
    for attempt in range(3):
        queue = f"/queue/py.backlog-{attempt}"
        producer = clients(server, f"producer-{attempt}")
        for i in range(backlog):
            producer.send_unreceipted(queue, f"m{i}", persistent="true")
        assert producer.send(queue + ".fence", "sync").cmd == "RECEIPT"

        conn = stomp.Connection12([(server.host, server.port)], heartbeats=(0, 0))
        state = {"received": 0, "receipts": 0, "error": None}
        drained = threading.Event()

        class Drain(stomp.ConnectionListener):
            def on_message(self, frame):
                state["received"] += 1
                conn.ack(frame.headers["ack"], receipt=f"ack-{state['received']}")

            def on_receipt(self, frame):
                state["receipts"] += 1
                if state["receipts"] == backlog:
                    drained.set()

            def on_error(self, frame):
                state["error"] = frame.headers.get("message")
                drained.set()

        conn.set_listener("drain", Drain())
        conn.connect(wait=True)
        try:
            conn.subscribe(queue, id="d", ack="client-individual")
            assert drained.wait(60), f"attempt {attempt}: stalled at {state}"
            assert state["error"] is None, f"attempt {attempt}: {state}"
            assert state["received"] == backlog, f"attempt {attempt}: {state}"
        finally:
            conn.disconnect()
        time.sleep(0.1)


def test_metrics_parse_with_the_prometheus_text_parser(server, clients):
    """/metrics is read by Prometheus's own parser: every family parses, and the broker's,
    the queues' and the API's figures are there."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    c = clients(server, "metrics-reader")
    # Two queues: each family's samples must still come out as one group.
    c.send("/queue/py.metrics", "one", persistent="true")
    c.send("/queue/py.metrics-other", "two", persistent="true")
    # A two-chunk job, so that the chunk-duration histogram has samples.
    c.send("/app/jobs", '{"chunks": 2, "mibPerChunk": 0}', **{"job-type": "demo"})
    http = server.listening["http"]
    # One API request, so that the request counter has a sample.
    try:
        urllib.request.urlopen(f"http://{http}/api/nothing")
    except urllib.error.HTTPError as error:
        assert error.code == 404
    def scrape():
        with urllib.request.urlopen(f"http://{http}/metrics") as response:
            text = response.read().decode()
        return {family.name: family for family in text_string_to_metric_families(text)}

    def chunks_timed(families):
        family = families.get("stompede_job_chunk_duration_seconds")
        return [s for s in family.samples if s.name.endswith("_count")] if family else []

    deadline = time.monotonic() + 20
    families = scrape()
    while not chunks_timed(families) or chunks_timed(families)[0].value < 2:
        assert time.monotonic() < deadline, "the job's chunks never showed in the histogram"
        time.sleep(0.05)
        families = scrape()
    histogram = families["stompede_job_chunk_duration_seconds"]
    assert histogram.type == "histogram"
    assert {s.labels["type"] for s in histogram.samples} == {"demo"}
    assert {s.labels["outcome"] for s in histogram.samples} == {"ok"}
    infinite = [s for s in histogram.samples if s.labels.get("le") == "+Inf"]
    assert infinite and infinite[0].value == 2
    assert families["stompede_store_size_bytes"].samples[0].value > 0
    assert "stompede_sessions" in families
    assert families["stompede_sessions"].samples[0].value >= 1
    depth = [s for s in families["stompede_queue_depth"].samples
             if s.labels.get("queue") == "/queue/py.metrics"]
    assert depth and depth[0].value == 1
    assert "stompede_messages_published" in families
    assert "stompede_jobs" in families


def test_the_python_example_follows_a_job_to_its_end(server):
    """examples/python/follow_job.py, run as its docstring says, against a real server."""
    import pathlib
    import subprocess
    import sys

    example = pathlib.Path(__file__).resolve().parents[3] / "examples" / "python" / "follow_job.py"
    host, port = server.listening["stomp"].rsplit(":", 1)
    result = subprocess.run(
        [sys.executable, str(example), "--host", host, "--port", port, "--chunks", "4"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("submitted ")
    assert [l for l in lines if l.startswith("CHUNK_COMPLETED")] == [
        f"CHUNK_COMPLETED {i}/4" for i in range(1, 5)
    ]
    assert lines[-1] == "JOB_COMPLETED"
