//! Revocation events from the log, the Redis stream and other producers:
//! `Event::from_json` on arbitrary bytes; whatever it accepts must survive
//! `to_json` and decode to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate::revocation::{Event, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(ev) = Event::from_json(data) else {
        return;
    };
    assert!(ev.validate().is_ok(), "{ev:?}");
    if let Target::Subject(s) = &ev.target {
        assert!(!s.is_empty() && s.len() <= scopegate::revocation::event::MAX_SUBJECT_LEN);
    }
    let json = ev.to_json();
    let again = Event::from_json(json.as_bytes()).expect("to_json output refused");
    assert_eq!(again, ev, "{json}");
    assert_eq!(again.to_json(), json);
});
