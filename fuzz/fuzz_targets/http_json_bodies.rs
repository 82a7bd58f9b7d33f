//! The engine's HTTP API: every request body decoder and every query string decoder, called
//! through `gamelan_rest::server::decode`, the functions the handlers use. Query strings are
//! tried only when they form a URI (the server never sees one that does not).
#![no_main]

use axum::http::Uri;
use gamelan_rest::server::decode::{
    self, CompletionsQuery, PollManyQuery, PollQuery, Slot, Submission,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode::registration(data);
    let _ = decode::heartbeat(data, "executor-1".to_owned());
    let _ = decode::task_ids(data);
    if let Ok(batch) = decode::results(data) {
        let valid_slots = batch.slots.iter().filter(|s| **s == Slot::Valid).count();
        assert_eq!(
            valid_slots,
            batch.valid.len(),
            "one valid slot per valid result"
        );
    }
    match decode::submission(data) {
        Ok(Submission::Batch(requests)) => {
            assert!(requests.iter().all(|r| r.max_attempts != Some(0)));
            assert!(
                requests
                    .iter()
                    .all(|r| !r.node_id.as_deref().is_some_and(|n| n.contains(':')))
            );
        }
        Ok(Submission::One(request)) => {
            assert_ne!(request.max_attempts, Some(0));
            assert!(!request.node_id.as_deref().is_some_and(|n| n.contains(':')));
        }
        Err(_) => {}
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/api/v1/executors/tasks?{text}").parse::<Uri>() else {
        return;
    };
    if let Ok(q) = decode::query::<PollQuery>(&uri) {
        assert!(decode::poll_max(q.max) <= decode::POLL_MAX_LIMIT);
    }
    if let Ok(q) = decode::query::<CompletionsQuery>(&uri) {
        assert!(decode::completions_max(q.max) <= decode::COMPLETIONS_MAX_LIMIT);
    }
    if let Ok(q) = decode::query::<PollManyQuery>(&uri) {
        if let Ok(ids) = decode::executor_ids(&q.executor_ids) {
            assert!(!ids.is_empty() && ids.len() <= decode::POLL_MAX_EXECUTORS);
            assert!(ids.iter().all(|id| !id.is_empty()));
        }
    }
});
