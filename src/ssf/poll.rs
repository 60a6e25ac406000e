//! Poll delivery (RFC 8936): the receiver asks the transmitter for SETs,
//! acknowledges the ones it accepted and reports the ones it refused in its
//! next request (`ack`, `setErrs`). Long polling by default
//! (`returnImmediately: false`); with `returnImmediately`, an empty answer
//! is followed by a pause of `interval`. A SET whose revocation could not be
//! made durable is neither acknowledged nor reported, so the transmitter
//! delivers it again. While the stream is paused or disabled, no polls are
//! made. Errors back off exponentially from `interval` up to 30 s.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::events::StreamStatus;
use super::{NotAccepted, Receiver};

/// Most SETs held for acknowledgement between two polls.
const MAX_PENDING: usize = 10_000;

/// What one poll answer said.
pub struct Answer {
    /// `jti` -> SET, in the order they were listed.
    pub sets: Vec<(String, String)>,
    pub more_available: bool,
}

/// Reads a poll answer: `sets` an object of strings, `moreAvailable` a bool.
pub fn parse_answer(v: &Value) -> Result<Answer, &'static str> {
    let sets = match v.get("sets") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err("a SET in `sets` is not a string"),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("`sets` is not an object"),
    };
    let more_available = match v.get("moreAvailable") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`moreAvailable` is not a boolean"),
    };
    Ok(Answer {
        sets,
        more_available,
    })
}

/// The body of one poll request.
pub fn request(
    max_events: u32,
    return_immediately: bool,
    ack: &[String],
    errs: &Map<String, Value>,
) -> Value {
    let mut body = json!({
        "maxEvents": max_events,
        "returnImmediately": return_immediately,
    });
    if !ack.is_empty() {
        body["ack"] = json!(ack);
    }
    if !errs.is_empty() {
        body["setErrs"] = Value::Object(errs.clone());
    }
    body
}

async fn pause(d: Duration, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.changed() => false,
    }
}

/// Polls until `shutdown`.
pub async fn run(rx: Arc<Receiver>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(cfg) = rx.cfg.poll.clone() else {
        return;
    };
    let mut ack: Vec<String> = Vec::new();
    let mut errs: Map<String, Value> = Map::new();
    let mut backoff = cfg.interval;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if matches!(
            rx.status(),
            Some(StreamStatus::Paused | StreamStatus::Disabled)
        ) {
            if !pause(cfg.interval, &mut shutdown).await {
                return;
            }
            continue;
        }
        let Some(endpoint) = rx.poll_endpoint() else {
            // Not learnt from the stream configuration yet.
            if !pause(cfg.interval, &mut shutdown).await {
                return;
            }
            continue;
        };
        let body = request(cfg.max_events, cfg.return_immediately, &ack, &errs);
        let call = rx.http.post(&endpoint, &body, cfg.wait);
        let answer = tokio::select! {
            a = call => a,
            _ = shutdown.changed() => return,
        };
        let answer = match answer
            .map_err(|e| (e.kind(), e.to_string()))
            .and_then(|v| parse_answer(&v).map_err(|e| ("malformed", e.to_string())))
        {
            Ok(a) => a,
            Err((kind, e)) => {
                rx.metrics.poll_errors.with_label_values(&[kind]).inc();
                tracing::warn!(error = %e, "ssf: poll failed");
                if !pause(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = cfg.interval;
        // The transmitter has the acknowledgements and errors just sent.
        ack.clear();
        errs.clear();
        let got = answer.sets.len();
        for (jti, set) in answer.sets {
            match rx.receive(set.as_bytes()).await {
                Ok(()) => ack.push(jti),
                // A replay was accepted before: acknowledge it again.
                Err(NotAccepted::Refused(r)) if r.refusal == super::verify::Refusal::Replay => {
                    ack.push(jti)
                }
                Err(NotAccepted::Refused(r)) => {
                    errs.insert(
                        jti,
                        json!({"err": r.refusal.err(), "description": r.description}),
                    );
                }
                Err(NotAccepted::Unavailable) => {}
            }
            if ack.len() + errs.len() >= MAX_PENDING {
                break;
            }
        }
        let idle = got == 0 && !answer.more_available;
        if idle
            && cfg.return_immediately
            && ack.is_empty()
            && errs.is_empty()
            && !pause(cfg.interval, &mut shutdown).await
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_requests() {
        let a = parse_answer(&json!({"sets": {"j1": "a.b.c"}, "moreAvailable": true})).unwrap();
        assert_eq!(a.sets, vec![("j1".to_string(), "a.b.c".to_string())]);
        assert!(a.more_available);
        assert!(parse_answer(&json!({})).unwrap().sets.is_empty());
        assert!(parse_answer(&json!({"sets": {"j": 1}})).is_err());
        assert!(parse_answer(&json!({"sets": []})).is_err());
        assert!(parse_answer(&json!({"moreAvailable": "yes"})).is_err());
        let mut errs = Map::new();
        errs.insert(
            "j2".into(),
            json!({"err": "invalid_key", "description": "d"}),
        );
        let r = request(10, false, &["j1".to_string()], &errs);
        assert_eq!(
            r,
            json!({"maxEvents": 10, "returnImmediately": false, "ack": ["j1"],
                   "setErrs": {"j2": {"err": "invalid_key", "description": "d"}}})
        );
        assert_eq!(
            request(5, true, &[], &Map::new()),
            json!({"maxEvents": 5, "returnImmediately": true})
        );
    }
}
