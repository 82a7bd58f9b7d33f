"""An independent Kafka client (confluent-kafka) talking to a Gamelan Kafka executor.

Produces N TaskMessages for the echo executor type, reads the TaskResultMessages back and
checks them field by field. Prints a JSON summary; exits non-zero on any problem.

Usage: confluent_roundtrip.py BOOTSTRAP TASKS_TOPIC RESULTS_TOPIC N
"""

import json
import sys
import time

from confluent_kafka import Consumer, Producer

RESULT_FIELDS = {
    "taskId", "runId", "tenantId", "nodeId", "attempt", "status",
    "output", "error", "executionToken", "completedAt",
}


def main():
    bootstrap, tasks_topic, results_topic, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    run = "py-%d" % int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    sent = []
    for i in range(n):
        task = {
            "taskId": "%s-%d:node:1" % (run, i),
            "runId": "%s-%d" % (run, i),
            "tenantId": "python",
            "nodeId": "node",
            "nodeName": "from python",
            "nodeType": "echo",
            "attempt": 1,
            "executionToken": "tok-%d" % i,
            "context": {"i": i},
            "configuration": {},
            "targetExecutor": "echo",
            "timeoutSeconds": 30,
            "scheduledAt": "2024-01-01T00:00:00Z",
        }
        sent.append(task)
        producer.produce(tasks_topic, key=task["runId"], value=json.dumps(task))
    left = producer.flush(30)
    if left:
        print(json.dumps({"results": 0, "problems": ["%d tasks not acknowledged" % left]}))
        return 1

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "python-results-" + run,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([results_topic])
    wanted = {t["taskId"] for t in sent}
    got = {}
    deadline = time.time() + 60
    while len(got) < n and time.time() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        result = json.loads(msg.value())
        if result.get("taskId") in wanted:
            got[result["taskId"]] = result
    consumer.close()

    problems = []
    for i, task in enumerate(sent):
        r = got.get(task["taskId"])
        if r is None:
            problems.append("no result for " + task["taskId"])
            continue
        missing = RESULT_FIELDS - set(r)
        if missing:
            problems.append("%s lacks %s" % (task["taskId"], sorted(missing)))
        if r.get("status") != "COMPLETED" or r.get("error") is not None:
            problems.append("%s: status %s error %s" % (task["taskId"], r.get("status"), r.get("error")))
        if r.get("output", {}).get("echo", {}).get("i") != i:
            problems.append("%s: output %s" % (task["taskId"], r.get("output")))
        for field in ("runId", "nodeId", "attempt", "tenantId", "executionToken"):
            if r.get(field) != task[field]:
                problems.append("%s: %s is %r, sent %r" % (task["taskId"], field, r.get(field), task[field]))
    print(json.dumps({"results": len(got), "problems": problems[:10]}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
