"""Submit a job to stompede and follow it to its end with stomp.py (STOMP 1.2 over TCP).

    pip install stomp.py
    python examples/python/follow_job.py --host 127.0.0.1 --port 61613 --chunks 10

Prints one line per event and exits 0 when the job completes (1 when it fails or is cancelled,
2 when it is refused). The events and their fields are in protocol/docs/jobs.md.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import uuid

import stomp


class Events(stomp.ConnectionListener):
    """Hands every frame to the main thread through a queue."""

    def __init__(self):
        self.frames: queue.Queue = queue.Queue()

    def on_message(self, frame):
        self.frames.put(("MESSAGE", frame))

    def on_receipt(self, frame):
        self.frames.put(("RECEIPT", frame))

    def on_error(self, frame):
        self.frames.put(("ERROR", frame))


def next_frame(events: Events, timeout: float):
    try:
        return events.frames.get(timeout=timeout)
    except queue.Empty:
        sys.exit(f"no answer from the server in {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=61613)
    parser.add_argument("--user", default="python-example")
    parser.add_argument("--password", default="")
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    conn = stomp.Connection12([(args.host, args.port)], heartbeats=(0, 0))
    events = Events()
    conn.set_listener("events", events)
    conn.connect(args.user, args.password, wait=True)
    # Refusals come on the submitter's error queue; the job's events on its topic.
    conn.subscribe("/user/queue/errors", id="errors", ack="auto")

    receipt = f"submit-{uuid.uuid4().hex[:8]}"
    conn.send(
        "/app/jobs",
        json.dumps({"chunks": args.chunks, "mibPerChunk": 0}),
        headers={"job-type": "demo", "receipt": receipt},
        content_type="application/json",
    )
    job_id = None
    while job_id is None:
        kind, frame = next_frame(events, args.timeout)
        if kind == "RECEIPT" and frame.headers.get("receipt-id") == receipt:
            job_id = frame.headers["job-id"]
        elif kind == "MESSAGE" and frame.headers.get("event") == "JOB_REJECTED":
            print("refused:", json.loads(frame.body)["reason"])
            return 2
        elif kind == "ERROR":
            print("error:", frame.headers.get("message"))
            return 2
    print("submitted", job_id)

    # From the first event, so that nothing is missed however fast the job runs.
    conn.subscribe(f"/topic/jobs/{job_id}", id="job", ack="auto", headers={"since-seq": "0"})
    while True:
        kind, frame = next_frame(events, args.timeout)
        if kind != "MESSAGE" or frame.headers.get("job-id") != job_id:
            continue
        event = json.loads(frame.body)
        name = event["event"]
        if name == "CHUNK_COMPLETED":
            print(f"{name} {event['chunkIndex'] + 1}/{event['chunkCount']}")
        else:
            print(name)
        if name in ("JOB_COMPLETED", "JOB_FAILED", "JOB_CANCELLED"):
            conn.disconnect()
            return 0 if name == "JOB_COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
