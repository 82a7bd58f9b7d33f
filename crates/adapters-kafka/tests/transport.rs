//! The executor side against a real broker (`tansu`, started per test).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use gamelan_domain::{ResultStatus, codes};
use gamelan_kafka::KafkaTransport;
use gamelan_kafka::dlq;
use gamelan_kafka::test_broker::{TansuBroker, free_port};
use gamelan_ports::{EngineTransport, TransportError};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};

const LONG: Duration = Duration::from_secs(60);

#[test]
fn tasks_flow_end_to_end_through_the_broker() {
    let broker = start_broker();
    let s = settings(&broker.bootstrap());
    let topics = s.topics.clone();
    let worker = EchoWorker::start(transport(s, "rt-1-echo", ECHO), true);
    let all = tasks("e2e", 300);
    produce_tasks(&broker.bootstrap(), &topics, &all);
    let mut reader = ResultReader::new(&broker.bootstrap(), &topics);
    reader.wait_for(all.iter().map(|t| t.task_id.clone()), LONG);
    for t in &all {
        let r = &reader.results[&t.task_id][0];
        assert_eq!(r.status(), ResultStatus::Completed);
        assert_eq!(r.execution_token(), t.execution_token);
        assert_eq!(r.output()["echo"]["i"], t.context["i"]);
    }
    // Every offset is committed once its result is acknowledged; close waits for it.
    let transport = worker.stop();
    transport.close();
    assert_eq!(
        committed_total(
            &broker.bootstrap(),
            "gamelan-executor-echo",
            &topics.tasks_for(ECHO),
            4
        ),
        300
    );
    assert!(matches!(
        transport.receive(1, Duration::ZERO),
        Err(TransportError::Closed)
    ));
}

#[test]
fn two_members_of_one_group_split_the_partitions_and_both_work() {
    let broker = start_broker();
    let s = settings(&broker.bootstrap());
    let topics = s.topics.clone();
    let a = EchoWorker::start(transport(s.clone(), "rt-a-echo", ECHO), true);
    let b = EchoWorker::start(transport(s, "rt-b-echo", ECHO), true);
    wait_until(LONG, "both members to hold partitions", || {
        let (pa, pb) = (a.transport.assignment(), b.transport.assignment());
        !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 4
    });
    let (pa, pb) = (a.transport.assignment(), b.transport.assignment());
    assert!(pa.iter().all(|p| !pb.contains(p)), "{pa:?} overlaps {pb:?}");

    let all = tasks("split", 400);
    produce_tasks(&broker.bootstrap(), &topics, &all);
    let mut reader = ResultReader::new(&broker.bootstrap(), &topics);
    reader.wait_for(all.iter().map(|t| t.task_id.clone()), LONG);
    let (ra, rb) = (a.received_count(), b.received_count());
    assert!(ra > 0 && rb > 0, "both members work: a={ra} b={rb}");
    assert_eq!(
        ra + rb,
        400,
        "no task went to both while the group was stable"
    );
}

#[test]
fn a_member_dropped_mid_run_leaves_its_unfinished_tasks_to_the_other() {
    let broker = start_broker();
    let mut s = settings(&broker.bootstrap());
    // The holder never finishes anything: no point waiting for it on a revoke.
    s.revoke_grace = Duration::ZERO;
    let topics = s.topics.clone();
    let holder = EchoWorker::start(transport(s.clone(), "rt-holder-echo", ECHO), false);
    let worker = EchoWorker::start(transport(s, "rt-worker-echo", ECHO), true);
    wait_until(LONG, "both members to hold partitions", || {
        let (ph, pw) = (holder.transport.assignment(), worker.transport.assignment());
        !ph.is_empty() && !pw.is_empty() && ph.len() + pw.len() == 4
    });
    let all = tasks("drop", 200);
    produce_tasks(&broker.bootstrap(), &topics, &all);
    let mut reader = ResultReader::new(&broker.bootstrap(), &topics);
    wait_until(LONG, "the holder to take tasks", || {
        holder.received_count() > 0
    });
    let held: HashSet<String> = {
        // Let the holder take all of its share before it dies.
        let mut last = 0;
        wait_until(LONG, "the holder's intake to settle", || {
            let _ = reader.poll(Duration::from_millis(200));
            let n = holder.received_count();
            let done = n == last && reader.results.len() + n >= 200;
            last = n;
            done
        });
        holder.received().into_iter().collect()
    };
    assert!(
        held.iter().all(|id| !reader.results.contains_key(id)),
        "the holder reported nothing"
    );
    // Dropped without close and without reporting: nothing of its work was committed.
    let transport = holder.stop();
    drop(transport);
    reader.wait_for(all.iter().map(|t| t.task_id.clone()), LONG);
    let redelivered: HashSet<String> = worker.received().into_iter().collect();
    assert!(
        held.iter().all(|id| redelivered.contains(id)),
        "every task the dropped member held was re-delivered to the other"
    );
}

#[test]
fn a_restarted_member_resumes_from_the_committed_offsets() {
    let broker = start_broker();
    let s = settings(&broker.bootstrap());
    let topics = s.topics.clone();
    let first = tasks("before", 50);
    let worker = EchoWorker::start(transport(s.clone(), "rt-1-echo", ECHO), true);
    produce_tasks(&broker.bootstrap(), &topics, &first);
    let mut reader = ResultReader::new(&broker.bootstrap(), &topics);
    reader.wait_for(first.iter().map(|t| t.task_id.clone()), LONG);
    let t = worker.stop();
    t.close();
    drop(t);
    assert_eq!(
        committed_total(
            &broker.bootstrap(),
            "gamelan-executor-echo",
            &topics.tasks_for(ECHO),
            4
        ),
        50
    );

    let second = tasks("after", 30);
    produce_tasks(&broker.bootstrap(), &topics, &second);
    let restarted = EchoWorker::start(transport(s, "rt-1-echo", ECHO), true);
    reader.wait_for(second.iter().map(|t| t.task_id.clone()), LONG);
    // Offsets are consumed in order per partition: had committed work been re-delivered,
    // it would have come before the new tasks.
    let received = restarted.received();
    let old: Vec<&String> = received
        .iter()
        .filter(|id| id.starts_with("before-"))
        .collect();
    assert!(old.is_empty(), "committed tasks were re-delivered: {old:?}");
    assert_eq!(received.len(), 30);
}

#[test]
fn poison_messages_become_failed_results_or_dead_letters_and_the_consumer_moves_on() {
    let broker = start_broker();
    let s = settings(&broker.bootstrap());
    let topics = s.topics.clone();
    let worker = EchoWorker::start(transport(s, "rt-1-echo", ECHO), true);
    let topic = topics.tasks_for(ECHO);
    // All on one key, so they sit on one partition in this order.
    let key = Some("poison-run");
    let good = &tasks("poison-run", 1)[0];
    let mut good_json = Vec::new();
    gamelan_kafka::messages::encode_task(good, ECHO, &mut good_json);
    produce_raw(
        &broker.bootstrap(),
        &topic,
        &[
            (key, b"this is not json".as_slice()),
            (key, br#"{"taskId":"poison-run:missing:1","executionToken":"t"}"#.as_slice()),
            (
                key,
                br#"{"taskId":"poison-run:alien:1","runId":"poison-run","nodeId":"alien","attempt":1,"nodeType":"no-such-type"}"#.as_slice(),
            ),
            (key, br#"{"hello":"world"}"#.as_slice()),
            (key, good_json.as_slice()),
        ],
    );
    let mut reader = ResultReader::new(&broker.bootstrap(), &topics);
    reader.wait_for(
        [
            "poison-run:missing:1".to_owned(),
            "poison-run:alien:1".to_owned(),
            good.task_id.clone(),
        ],
        LONG,
    );
    let missing = &reader.results["poison-run:missing:1"][0];
    assert_eq!(missing.status(), ResultStatus::Failed);
    let err = missing.error().unwrap();
    assert_eq!(err.code, codes::INVALID_TASK);
    assert!(err.message.contains("runId"), "{}", err.message);
    assert_eq!(missing.execution_token(), "t");
    let alien = &reader.results["poison-run:alien:1"][0];
    assert_eq!(alien.error().unwrap().code, codes::NO_EXECUTOR);
    assert_eq!(
        reader.results[&good.task_id][0].status(),
        ResultStatus::Completed
    );
    assert_eq!(
        worker.received(),
        vec![good.task_id.clone()],
        "only the good task reached the worker"
    );

    // The two messages without a task id went to the dead letter topic, with the reason.
    let dlq = consumer(&broker.bootstrap(), &format!("test-dlq-{}", unique()));
    dlq.subscribe(&[&topics.dlq]).unwrap();
    let mut letters = Vec::new();
    wait_until(LONG, "two dead letters", || {
        if let Some(Ok(m)) = dlq.poll(Duration::from_millis(100)) {
            let reason = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == dlq::REASON))
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                .unwrap_or_default();
            letters.push((m.payload().map(<[u8]>::to_vec).unwrap_or_default(), reason));
        }
        letters.len() >= 2
    });
    assert_eq!(letters[0].0, b"this is not json");
    assert!(letters[0].1.contains("not JSON"), "{}", letters[0].1);
    assert_eq!(letters[1].0, br#"{"hello":"world"}"#);
    assert!(letters[1].1.contains("fields"), "{}", letters[1].1);

    // And every one of the five offsets was committed: the consumer moved on.
    let t = worker.stop();
    t.close();
    assert_eq!(
        committed_total(&broker.bootstrap(), "gamelan-executor-echo", &topic, 4),
        5
    );
}

#[test]
fn connect_is_unavailable_while_the_broker_is_down_and_works_once_it_appears() {
    let port = free_port().unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut s = settings(&bootstrap);
    s.connect_timeout = Duration::from_millis(500);
    let topics = s.topics.clone();
    let t = std::sync::Arc::new(KafkaTransport::new(s));
    match t.connect() {
        Err(TransportError::Unavailable(m)) => assert!(m.contains(&bootstrap), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        t.register(&[registration("rt-1-echo", ECHO)]),
        Err(TransportError::Unavailable(_))
    ));

    let broker = TansuBroker::start_on(port);
    // The runtime retries with backoff; here: until it works or the deadline.
    wait_until(LONG, "connect to succeed", || t.connect().is_ok());
    t.register(&[registration("rt-1-echo", ECHO)]).unwrap();
    let worker = EchoWorker::start(std::sync::Arc::clone(&t), true);
    let all = tasks("late", 5);
    produce_tasks(&broker.bootstrap(), &topics, &all);
    let mut reader = ResultReader::new(&broker.bootstrap(), &topics);
    reader.wait_for(all.iter().map(|t| t.task_id.clone()), LONG);
    drop(worker);
}

#[test]
fn no_credit_pauses_intake_and_credit_resumes_it_without_losing_tasks() {
    let broker = start_broker();
    let s = settings(&broker.bootstrap());
    let topics = s.topics.clone();
    let t = transport(s, "rt-1-echo", ECHO);
    // Join the group first, with no credit from the start.
    wait_until(LONG, "partitions", || {
        t.receive(0, Duration::from_millis(50)).unwrap();
        t.assignment().len() == 4
    });
    let all = tasks("credit", 40);
    produce_tasks(&broker.bootstrap(), &topics, &all);
    // Without credit nothing is handed out, however long we poll.
    for _ in 0..5 {
        assert_eq!(t.receive(0, Duration::from_millis(100)).unwrap(), vec![]);
    }
    // Credit of 7 gives at most 7 at a time, and every task arrives exactly once.
    let mut got = Vec::new();
    wait_until(LONG, "all 40 tasks", || {
        let batch = t.receive(7, Duration::from_millis(100)).unwrap();
        assert!(batch.len() <= 7, "{} tasks for a credit of 7", batch.len());
        for m in batch {
            if let gamelan_ports::Inbound::Task(task) = m {
                got.push(task.task_id);
            }
        }
        got.len() >= 40
    });
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!((got.len(), unique.len()), (40, 40));
}
