"""Sends N no-op tasks through Celery and waits until the worker ran them all. Prints a
human line and then one JSON line: {"peer": "celery", "tasks": N, "tasks_per_sec": X, ...}.

Two figures, both on the same worker:
- tasks_per_sec: the worker draining a queue that already holds all N tasks (consumption
  paused while the client publishes, resumed when the clock starts). This is Celery's best
  case and the figure `gamelan bench --compare celery` compares against.
- end_to_end_per_sec: publish and execute together, from the first publish to the last
  task done; on a small machine the single publishing client is usually the limit."""

import argparse
import json
import sys
import time

import redis

from noop_tasks import BROKER, COUNTER, app, noop

QUEUE = "celery"


def wait_count(r, n, deadline):
    done = 0
    while time.monotonic() < deadline:
        done = int(r.get(COUNTER) or 0)
        if done >= n:
            break
        time.sleep(0.002)
    return done


def publish(n, payload):
    # One producer for the whole run (Celery's advice for publishing in bulk).
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            noop.apply_async((payload,), producer=producer)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--payload-bytes", type=int, default=128)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--timeout", type=float, default=300.0)
    a = p.parse_args()

    # Wait until the worker answers a ping, so its start-up is not counted.
    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if time.monotonic() > deadline:
            print("celery worker did not answer a ping within 60 s", file=sys.stderr)
            return 1
    r = redis.Redis.from_url(BROKER)
    payload = "x" * a.payload_bytes

    # Warm-up: connections and worker processes in place.
    r.set(COUNTER, 0)
    publish(100, payload)
    wait_count(r, 100, time.monotonic() + 60)

    # Worker throughput on a full queue.
    r.set(COUNTER, 0)
    app.control.cancel_consumer(QUEUE, reply=True)
    t0 = time.monotonic()
    publish(a.tasks, payload)
    publish_s = time.monotonic() - t0
    started = time.monotonic()
    app.control.add_consumer(QUEUE, reply=True)
    drained = wait_count(r, a.tasks, started + a.timeout)
    drain_s = time.monotonic() - started

    # Publish and execute together.
    r.set(COUNTER, 0)
    started = time.monotonic()
    publish(a.tasks, payload)
    ok = wait_count(r, a.tasks, started + a.timeout)
    e2e_s = time.monotonic() - started

    rate = drained / drain_s if drain_s > 0 else 0.0
    e2e = ok / e2e_s if e2e_s > 0 else 0.0
    print(
        f"celery: {drained}/{a.tasks} noop tasks drained from a full queue in {drain_s:.2f} s "
        f"= {rate:.0f} tasks/s; publish + execute {e2e:.0f} tasks/s "
        f"(publishing alone {a.tasks / publish_s:.0f}/s), concurrency {a.concurrency}"
    )
    print(json.dumps({
        "peer": "celery",
        "tasks": a.tasks,
        "completed": drained,
        "payload_bytes": a.payload_bytes,
        "concurrency": a.concurrency,
        "elapsed_ms": drain_s * 1e3,
        "tasks_per_sec": rate,
        "end_to_end_per_sec": e2e,
        "publish_per_sec": a.tasks / publish_s if publish_s > 0 else 0.0,
    }))
    return 0 if drained == a.tasks and ok == a.tasks else 1


if __name__ == "__main__":
    sys.exit(main())
