"""The Celery side of the peer benchmark: a no-op task, the same work as Gamelan's `echo`
executor. Results are not stored (Celery's redis result backend subscribes to one channel
per task and halves throughput); each task instead increments a counter in redis, which
the driver watches. That is Celery's fastest reasonable set-up, so the comparison is fair
to the peer."""

import os

import redis
from celery import Celery

BROKER = os.environ.get("CELERY_BENCH_REDIS", "redis://127.0.0.1:6379/0")
COUNTER = "gamelan-bench:done"

app = Celery("noop_tasks", broker=BROKER)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_prefetch_multiplier=64,
    task_acks_late=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_counter = None


def counter():
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(BROKER)
    return _counter


@app.task(name="noop", ignore_result=True)
def noop(data):
    counter().incr(COUNTER)
    return data
