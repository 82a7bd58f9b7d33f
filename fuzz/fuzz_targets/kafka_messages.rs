//! The JSON messages on the Kafka topics: tasks, results and executor records, decoded as the
//! transport and the engine bridge decode them. What decodes must encode again and decode to
//! the same value, since the engine forwards what it accepted.
#![no_main]

use gamelan_kafka::messages::{
    decode_record, decode_result, decode_task, encode_result, encode_task,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(task) = decode_task(Some(data)) {
        let mut buf = Vec::new();
        encode_task(&task, "echo", &mut buf);
        let again = decode_task(Some(&buf)).map_err(|p| p.error);
        assert_eq!(
            again.as_ref(),
            Ok(&task),
            "a decoded task must re-encode to itself"
        );
    }
    if let Ok(result) = decode_result(Some(data)) {
        let mut buf = Vec::new();
        encode_result(&result, &mut buf);
        let again = decode_result(Some(&buf));
        assert_eq!(
            again.as_ref(),
            Ok(&result),
            "a decoded result must re-encode to itself"
        );
    }
    if let Ok(record) = decode_record(Some(data)) {
        let _ = record.to_registration();
        let _ = record.to_heartbeat();
        assert!(decode_record(Some(&record.encode())).is_ok());
    }
});
