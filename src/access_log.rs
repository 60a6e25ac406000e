//! The one log line per request: formatted by hand and written in batches.
//!
//! Every other message goes through `tracing`; this line does not, because
//! the load benchmark (issue #7) found tracing's formatter and one `write`
//! per request to be the largest part of a request's own CPU. The line has
//! exactly the shape `tracing-subscriber` gives an event (JSON or text), so
//! one stream of logs still parses one way, and `SCOPEGATE_LOG` still
//! decides whether it is written (target `scopegate::gateway`, level INFO;
//! the filter is fixed at start, so it is asked once, in [`install`]).
//!
//! Lines go into a shared buffer that a writer thread empties every
//! `[log] flush` (default 20 ms); a request never waits on stderr unless the
//! buffer is over [`HIGH_WATER`] (stderr blocked or far too slow), and then
//! it writes itself: slower requests rather than lost audit lines. With
//! `flush = "0s"` each request writes its own line (one `write` per request,
//! as nginx's unbuffered `access_log` does; the load benchmark compares both).
//!
//! Nothing is written until [`install`] runs (the binary does it), so tests
//! and embedders that use the library get no stray output.

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;

/// Above this many buffered bytes a request writes the buffer itself.
pub const HIGH_WATER: usize = 4 << 20;

/// What one request's line says. Never a token: `token` is its short hash.
pub struct Line<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub method: &'a Method,
    /// allow | deny | error
    pub decision: &'static str,
    pub reason: &'static str,
    pub status: u16,
    pub decision_us: u64,
    /// Until the answer's head came back; only for forwarded requests.
    pub total_us: Option<u64>,
    /// The token's short hash, or `-`.
    pub token: &'a str,
}

struct Sink {
    json: bool,
    /// No writer thread: each request writes its own line.
    unbuffered: bool,
    buf: Mutex<Vec<u8>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts writing request lines to stderr, as JSON or text, if the
/// installed `tracing` filter enables them. Call it after the subscriber is
/// set: the filter (`SCOPEGATE_LOG`) is read once here, not per request.
/// `flush_every` zero writes each line at once. Once per process; later
/// calls change nothing.
pub fn install(json: bool, flush_every: Duration) {
    if !tracing::enabled!(target: "scopegate::gateway", tracing::Level::INFO) {
        return;
    }
    let fresh = SINK
        .set(Sink {
            json,
            unbuffered: flush_every.is_zero(),
            buf: Mutex::new(Vec::with_capacity(64 * 1024)),
        })
        .is_ok();
    if fresh && !flush_every.is_zero() {
        // The thread only ever sleeps and writes; it ends with the process,
        // and `flush` at exit writes what it has not.
        let _ = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(flush_every);
                    flush();
                }
            });
    }
}

/// Writes out whatever is buffered (the binary calls it before exiting).
pub fn flush() {
    let Some(sink) = SINK.get() else { return };
    let mut spare = Vec::new();
    {
        let mut buf = sink.buf.lock().unwrap_or_else(|p| p.into_inner());
        if buf.is_empty() {
            return;
        }
        // Swap, so requests keep appending while the bytes go out.
        spare.reserve(buf.capacity());
        std::mem::swap(&mut *buf, &mut spare);
    }
    let _ = std::io::stderr().lock().write_all(&spare);
}

/// Logs one request, if logging is installed (and so INFO is enabled for it).
pub fn write(line: &Line<'_>) {
    let Some(sink) = SINK.get() else { return };
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        format(&mut s, line, SystemTime::now(), sink.json);
        if sink.unbuffered {
            let _ = std::io::stderr().lock().write_all(&s);
            return;
        }
        let mut buf = sink.buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(&s);
        if buf.len() > HIGH_WATER {
            // The writer is not keeping up: wait for stderr here, in order.
            let _ = std::io::stderr().lock().write_all(&buf);
            buf.clear();
        }
    });
}

/// A field's value, as tracing records it: a `str` (quoted in text), a
/// `Display` value (bare in text), or a number. JSON quotes both kinds of text.
enum Value<'a> {
    Str(&'a str),
    Shown(&'a str),
    Num(u64),
}

/// The line's fields, in tracing's order (the order of the original macro).
fn fields<'a>(l: &'a Line<'_>) -> impl Iterator<Item = (&'static str, Value<'a>)> {
    [
        ("request_id", Value::Str(l.request_id)),
        ("route", Value::Str(l.route)),
        ("method", Value::Shown(l.method.as_str())),
        ("decision", Value::Str(l.decision)),
        ("reason", Value::Str(l.reason)),
        ("status", Value::Num(u64::from(l.status))),
        ("decision_us", Value::Num(l.decision_us)),
    ]
    .into_iter()
    .chain(l.total_us.map(|t| ("total_us", Value::Num(t))))
    .chain([("token", Value::Shown(l.token))])
}

/// The line as `tracing-subscriber` would print the same event. Bytes, not
/// a `String`: every part is UTF-8 already, and the buffer it goes to is bytes.
fn format(out: &mut Vec<u8>, l: &Line<'_>, now: SystemTime, json: bool) {
    let ts = Timestamp::from(now);
    if json {
        out.extend_from_slice(b"{\"timestamp\":\"");
        ts.push_to(out);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"request\"");
        for (name, value) in fields(l) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            match value {
                Value::Str(s) | Value::Shown(s) => json_str(out, s),
                Value::Num(n) => push_num(out, n),
            }
        }
        out.extend_from_slice(b"},\"target\":\"scopegate::gateway\"}\n");
    } else {
        ts.push_to(out);
        out.extend_from_slice(b"  INFO scopegate::gateway: request");
        for (name, value) in fields(l) {
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            match value {
                // Quoted as tracing prints a str (Debug); a JSON literal is
                // the same text for anything a route name or reason holds.
                Value::Str(s) => json_str(out, s),
                Value::Shown(s) => out.extend_from_slice(s.as_bytes()),
                Value::Num(n) => push_num(out, n),
            }
        }
        out.push(b'\n');
    }
}

/// A JSON string literal (RFC 8259 7).
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        // Ids, hashes and route names: nothing to escape.
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber prints it.
struct Timestamp {
    year: i64,
    month: u32,
    day: u32,
    secs_of_day: u64,
    micros: u32,
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let days = (d.as_secs() / 86_400) as i64;
        // Howard Hinnant's days-to-civil: exact for the proleptic Gregorian calendar.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Timestamp {
            year,
            month,
            day,
            secs_of_day: d.as_secs() % 86_400,
            micros: d.subsec_micros(),
        }
    }
}

impl Timestamp {
    /// Appends the timestamp; digits by hand, since `write!` with padding
    /// was a visible share of the line's cost.
    fn push_to(&self, out: &mut Vec<u8>) {
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        let s = self.secs_of_day;
        digits(&mut b[0..4], self.year.max(0) as u64);
        digits(&mut b[5..7], u64::from(self.month));
        digits(&mut b[8..10], u64::from(self.day));
        digits(&mut b[11..13], s / 3600);
        digits(&mut b[14..16], s / 60 % 60);
        digits(&mut b[17..19], s % 60);
        digits(&mut b[20..26], u64::from(self.micros));
        out.extend_from_slice(&b);
    }
}

/// `n` in decimal (`write!` costs more than the rest of a field).
fn push_num(out: &mut Vec<u8>, n: u64) {
    let width = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let mut b = [0u8; 20];
    digits(&mut b[..width], n);
    out.extend_from_slice(&b[..width]);
}

/// `n` in decimal, right-aligned and zero-padded to `dst`'s width.
fn digits(dst: &mut [u8], mut n: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(total: Option<u64>) -> Line<'static> {
        Line {
            request_id: "0123456789abcdef",
            route: "file.get",
            method: &Method::GET,
            decision: "allow",
            reason: "ok",
            status: 200,
            decision_us: 12,
            total_us: total,
            token: "58adff0d",
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |secs: u64, micros: u64| {
            let mut s = Vec::new();
            Timestamp::from(UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + micros))
                .push_to(&mut s);
            String::from_utf8(s).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29 (a leap day) 23:59:59.999999
        assert_eq!(at(1_709_251_199, 999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(at(1_709_251_200, 0), "2024-03-01T00:00:00.000000Z");
        assert_eq!(at(4_102_444_800, 42), "2100-01-01T00:00:00.000042Z");
    }

    #[test]
    fn json_lines_have_tracing_shape() {
        let mut s = Vec::new();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        format(&mut s, &line(Some(99)), now, true);
        assert!(s.ends_with(b"\n"));
        let v: serde_json::Value = serde_json::from_slice(&s).unwrap();
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "scopegate::gateway");
        let f = &v["fields"];
        assert_eq!(f["message"], "request");
        assert_eq!(f["request_id"], "0123456789abcdef");
        assert_eq!(f["route"], "file.get");
        assert_eq!(f["method"], "GET");
        assert_eq!(f["decision"], "allow");
        assert_eq!(f["status"], 200);
        assert_eq!(f["decision_us"], 12);
        assert_eq!(f["total_us"], 99);
        assert_eq!(f["token"], "58adff0d");

        s.clear();
        format(&mut s, &line(None), now, true);
        let v: serde_json::Value = serde_json::from_slice(&s).unwrap();
        assert!(v["fields"].get("total_us").is_none());
    }

    #[test]
    fn numbers_are_plain_decimal() {
        for n in [0, 7, 10, 99, 100, 123_456, u64::MAX] {
            let mut s = Vec::new();
            push_num(&mut s, n);
            assert_eq!(s, n.to_string().as_bytes());
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = Vec::new();
        json_str(&mut s, "a\"b\\c\u{1}dé");
        assert_eq!(s, r#""a\"b\\c\u0001dé""#.as_bytes());
        let back: String = serde_json::from_slice(&s).unwrap();
        assert_eq!(back, "a\"b\\c\u{1}dé");
    }

    #[test]
    fn text_lines_have_tracing_shape() {
        let mut s = Vec::new();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        format(&mut s, &line(Some(99)), now, false);
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "2023-11-14T22:13:20.000000Z  INFO scopegate::gateway: request \
             request_id=\"0123456789abcdef\" route=\"file.get\" method=GET decision=\"allow\" \
             reason=\"ok\" status=200 decision_us=12 total_us=99 token=58adff0d\n"
        );
    }
}
