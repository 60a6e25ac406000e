//! Answer redaction (`scopegate::redact`): whatever the upstream sends, the
//! output is JSON, no hidden member survives at any depth, what is not
//! hidden is untouched, and a second pass changes nothing.
//!
//! Input: the answer's bytes. The rules hide `shared_link`,
//! `upload_token` and `download_url` (any ASCII case), point URLs on
//! `http://up/` at `http://gw/`, and drop other URLs under
//! `authenticated_download_url`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate::redact::{RedactError, Rules, UrlAction, redact};
use serde_json::Value;

const HIDDEN: [&str; 3] = ["shared_link", "upload_token", "download_url"];

struct Fixed;

impl Rules for Fixed {
    fn hidden(&self, name: &str) -> bool {
        HIDDEN.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
    fn url(&mut self, name: Option<&str>, url: &str) -> UrlAction {
        map(name, url)
    }
}

fn map(name: Option<&str>, url: &str) -> UrlAction {
    if let Some(rest) = url.strip_prefix("http://up/") {
        UrlAction::Replace(format!("http://gw/{rest}"))
    } else if name == Some("authenticated_download_url") && !url.starts_with("http://gw/") {
        UrlAction::Drop
    } else {
        UrlAction::Keep
    }
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// The same rules on a parsed tree: what the output must read as.
fn reference(v: &Value, name: Option<&str>) -> Option<Value> {
    Some(match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !Fixed.hidden(k))
                .filter_map(|(k, v)| Some((k.clone(), reference(v, Some(k))?)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().filter_map(|v| reference(v, None)).collect()),
        Value::String(s) if is_url(s) => match map(name, s) {
            UrlAction::Keep => v.clone(),
            UrlAction::Replace(n) => Value::String(n),
            UrlAction::Drop => return None,
        },
        _ => v.clone(),
    })
}

fn no_hidden(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                assert!(!Fixed.hidden(k), "`{k}` survived");
                no_hidden(v);
            }
        }
        Value::Array(a) => a.iter().for_each(no_hidden),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let lax: Result<Value, _> = serde_json::from_slice(data);
    match redact(data, &mut Fixed) {
        Ok(out) => {
            // Idempotent, and our own reader accepts what we write.
            assert_eq!(redact(&out, &mut Fixed).as_ref(), Ok(&out));
            let Ok(input) = lax else {
                // serde refuses some JSON we read (numbers out of f64's
                // range); nothing more to compare against.
                return;
            };
            let v: Value = serde_json::from_slice(&out).expect("output is not JSON");
            no_hidden(&v);
            // Without duplicate keys both trees are one reading: fields not
            // in the table are untouched, URLs mapped as the rules say.
            if scopegate::json::parse_strict(data).is_ok() {
                let want = reference(&input, None).unwrap_or(Value::Null);
                assert_eq!(v, want);
            }
        }
        Err(RedactError::TooDeep) => {}
        Err(RedactError::Syntax) => {
            assert!(lax.is_err(), "serde_json reads what redact refused");
        }
    }
});
