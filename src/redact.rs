//! Answer redaction: one JSON answer rewritten in a single pass.
//!
//! The gateway forwards with the parent token, so the upstream answers as
//! the parent: a file's `shared_link`, its download URLs, its
//! representations, the upload preflight's `upload_token`. A downscoped
//! token's holder must see only what its scopes cover, so the answer is
//! rewritten before it leaves: every object member whose (decoded) name
//! [`Rules::hidden`] picks is removed, at any depth, and every string that
//! is an absolute `http(s)` URL goes through [`Rules::url`] (kept, replaced,
//! or removed).
//!
//! Why bytes in, bytes out, rather than `serde_json::Value`: the transform
//! copies what it keeps as it was written (numbers keep their spelling,
//! strings their escapes) and builds no tree, so it costs one pass and one
//! output buffer, a fraction of a parse into a tree and a serialisation
//! back. It still reads the whole grammar strictly (RFC 8259: strings
//! with their escapes and UTF-8, numbers, literals, nesting up to
//! [`MAX_DEPTH`]), and anything else is an error: the caller answers 502
//! rather than pass on an answer it could not read. Whitespace between
//! tokens is dropped. Member names are compared after decoding, so
//! `"shared\u005flink"` is `shared_link`.
//!
//! The input is whole (the caller reads it under a cap): memory is the
//! input plus at most its size again for the output.

/// Deepest nesting of arrays and objects accepted (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

/// What to do with one URL found in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlAction {
    /// Leave it as the upstream wrote it.
    Keep,
    /// Put this string in its place.
    Replace(String),
    /// Remove the member (or array element) that holds it.
    Drop,
}

/// The decisions a redaction asks of its caller.
pub trait Rules {
    /// Is an object member with this (decoded) name taken out?
    fn hidden(&self, name: &str) -> bool;
    /// An absolute `http://` or `https://` URL (decoded), found as the value
    /// of member `name` (`None` in an array).
    fn url(&mut self, name: Option<&str>, url: &str) -> UrlAction;
}

/// Why an answer could not be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("the answer is not JSON")]
    Syntax,
    #[error("the answer is nested too deeply")]
    TooDeep,
}

/// Rewrites one JSON document (see the module's documentation).
pub fn redact(input: &[u8], rules: &mut impl Rules) -> Result<Vec<u8>, RedactError> {
    let mut p = Pass {
        s: input,
        i: 0,
        out: Vec::with_capacity(input.len()),
        scratch: String::new(),
    };
    p.ws();
    match p.value(0, None, rules)? {
        Kept::Yes => {}
        // A document that is itself a URL to drop: nothing is left of it.
        Kept::No => p.out.extend_from_slice(b"null"),
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(RedactError::Syntax);
    }
    Ok(p.out)
}

/// Did a value stay in the output?
#[derive(PartialEq, Eq)]
enum Kept {
    Yes,
    No,
}

struct Pass<'a> {
    s: &'a [u8],
    i: usize,
    out: Vec<u8>,
    /// Decoded member names and strings that hold escapes.
    scratch: String,
}

/// A string as read: where its raw bytes (between the quotes) are, and
/// whether they hold an escape (then the decoded text is in `scratch`).
struct Str {
    start: usize,
    end: usize,
    escaped: bool,
}

const SYNTAX: RedactError = RedactError::Syntax;

impl Pass<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(
        &mut self,
        depth: usize,
        name: Option<&str>,
        rules: &mut impl Rules,
    ) -> Result<Kept, RedactError> {
        match self.peek().ok_or(SYNTAX)? {
            b'{' => self.object(depth + 1, rules).map(|()| Kept::Yes),
            b'[' => self.array(depth + 1, rules).map(|()| Kept::Yes),
            b'"' => self.string_value(name, rules),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(SYNTAX),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<Kept, RedactError> {
        if !self.s[self.i..].starts_with(word) {
            return Err(SYNTAX);
        }
        self.i += word.len();
        self.out.extend_from_slice(word);
        Ok(Kept::Yes)
    }

    fn number(&mut self) -> Result<Kept, RedactError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(SYNTAX),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(SYNTAX);
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(SYNTAX);
            }
            self.digits();
        }
        self.out.extend_from_slice(&self.s[start..self.i]);
        Ok(Kept::Yes)
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn object(&mut self, depth: usize, rules: &mut impl Rules) -> Result<(), RedactError> {
        if depth > MAX_DEPTH {
            return Err(RedactError::TooDeep);
        }
        self.i += 1;
        self.out.push(b'{');
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.out.push(b'}');
            return Ok(());
        }
        let src = self.s;
        let mut any = false;
        loop {
            if self.peek() != Some(b'"') {
                return Err(SYNTAX);
            }
            let key = self.string()?;
            // Owned only when it had escapes; the common case borrows.
            let decoded;
            let name: &str = if key.escaped {
                decoded = std::mem::take(&mut self.scratch);
                &decoded
            } else {
                // Checked to be UTF-8 by `string`.
                std::str::from_utf8(&src[key.start..key.end]).map_err(|_| SYNTAX)?
            };
            self.ws();
            if self.peek() != Some(b':') {
                return Err(SYNTAX);
            }
            self.i += 1;
            self.ws();
            let mark = self.out.len();
            if any {
                self.out.push(b',');
            }
            self.out.push(b'"');
            self.out.extend_from_slice(&src[key.start..key.end]);
            self.out.extend_from_slice(b"\":");
            let hidden = rules.hidden(name);
            let kept = self.value(depth, Some(name), rules)?;
            if hidden || kept == Kept::No {
                self.out.truncate(mark);
            } else {
                any = true;
            }
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    self.out.push(b'}');
                    return Ok(());
                }
                _ => return Err(SYNTAX),
            }
        }
    }

    fn array(&mut self, depth: usize, rules: &mut impl Rules) -> Result<(), RedactError> {
        if depth > MAX_DEPTH {
            return Err(RedactError::TooDeep);
        }
        self.i += 1;
        self.out.push(b'[');
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.out.push(b']');
            return Ok(());
        }
        let mut any = false;
        loop {
            let mark = self.out.len();
            if any {
                self.out.push(b',');
            }
            match self.value(depth, None, rules)? {
                Kept::Yes => any = true,
                Kept::No => self.out.truncate(mark),
            }
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    self.out.push(b']');
                    return Ok(());
                }
                _ => return Err(SYNTAX),
            }
        }
    }

    /// A string value: copied as written, unless it is a URL the rules
    /// replace or drop.
    fn string_value(
        &mut self,
        name: Option<&str>,
        rules: &mut impl Rules,
    ) -> Result<Kept, RedactError> {
        let s = self.string()?;
        let raw = &self.s[s.start..s.end];
        let text: &str = if s.escaped {
            &self.scratch
        } else {
            std::str::from_utf8(raw).map_err(|_| SYNTAX)?
        };
        let action = if is_http_url(text) {
            rules.url(name, text)
        } else {
            UrlAction::Keep
        };
        match action {
            UrlAction::Keep => {
                self.out.push(b'"');
                self.out.extend_from_slice(raw);
                self.out.push(b'"');
                Ok(Kept::Yes)
            }
            UrlAction::Replace(new) => {
                write_string(&mut self.out, &new);
                Ok(Kept::Yes)
            }
            UrlAction::Drop => Ok(Kept::No),
        }
    }

    /// Reads a string at `self.i` (on its opening quote). When it holds an
    /// escape, its decoded text is left in `scratch`.
    fn string(&mut self) -> Result<Str, RedactError> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            let b = self.peek().ok_or(SYNTAX)?;
            match b {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                    if self.s.get(self.i - 1) == Some(&b'u') {
                        self.i += 4;
                    }
                }
                0..=0x1f => return Err(SYNTAX),
                _ => self.i += 1,
            }
        }
        let end = self.i;
        self.i += 1;
        let raw = &self.s[start..end];
        if !escaped {
            std::str::from_utf8(raw).map_err(|_| SYNTAX)?;
        } else {
            self.scratch.clear();
            decode(raw, &mut self.scratch)?;
        }
        Ok(Str {
            start,
            end,
            escaped,
        })
    }
}

/// `http://` or `https://`, any case, as a URL parser reads a scheme.
fn is_http_url(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"http://"))
        || (b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"https://"))
}

/// Decodes a string's raw bytes (between the quotes) that hold escapes.
fn decode(raw: &[u8], out: &mut String) -> Result<(), RedactError> {
    let text = std::str::from_utf8(raw).map_err(|_| SYNTAX)?;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or(SYNTAX)?;
        out.push(match e {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = hex4(&mut chars)?;
                match hi {
                    0xD800..=0xDBFF => {
                        if chars.next() != Some('\\') || chars.next() != Some('u') {
                            return Err(SYNTAX);
                        }
                        let lo = hex4(&mut chars)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(SYNTAX);
                        }
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        char::from_u32(c).ok_or(SYNTAX)?
                    }
                    0xDC00..=0xDFFF => return Err(SYNTAX),
                    c => char::from_u32(c).ok_or(SYNTAX)?,
                }
            }
            _ => return Err(SYNTAX),
        });
    }
    Ok(())
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, RedactError> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next().and_then(|c| c.to_digit(16)).ok_or(SYNTAX)?;
    }
    Ok(v)
}

/// Writes `s` as a JSON string.
fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Hides `shared_link` and `upload_token`; points `https://up.example`
    /// at `https://gw`; drops other URLs under `authenticated_download_url`.
    struct Test;

    impl Rules for Test {
        fn hidden(&self, name: &str) -> bool {
            matches!(name, "shared_link" | "upload_token")
        }
        fn url(&mut self, name: Option<&str>, url: &str) -> UrlAction {
            if let Some(rest) = url.strip_prefix("https://up.example/") {
                UrlAction::Replace(format!("https://gw/{rest}"))
            } else if name == Some("authenticated_download_url") {
                UrlAction::Drop
            } else {
                UrlAction::Keep
            }
        }
    }

    fn run(s: &str) -> Result<Value, RedactError> {
        redact(s.as_bytes(), &mut Test).map(|o| serde_json::from_slice(&o).unwrap())
    }

    #[test]
    fn hidden_members_go_at_any_depth() {
        let v = run(
            r#"{"type":"folder","shared_link":{"url":"x"},"item_collection":{"entries":[
            {"type":"file","id":"1","shared_link":null,"name":"a"},
            {"type":"file","id":"2","nested":[{"shared_link":1}],"shared_link":{"a":[1,2]}}]}}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"folder","item_collection":{"entries":[
                {"type":"file","id":"1","name":"a"},
                {"type":"file","id":"2","nested":[{}]}]}})
        );
    }

    #[test]
    fn names_are_compared_decoded() {
        assert_eq!(
            run(r#"{"shared\u005flink":1,"upload\u005Ftoken":2,"a":3}"#).unwrap(),
            json!({"a":3})
        );
        // Escapes in kept names are copied as written.
        let out = redact(br#"{"n\u0061me":1}"#, &mut Test).unwrap();
        assert_eq!(out, br#"{"n\u0061me":1}"#);
    }

    #[test]
    fn commas_stay_right_whichever_member_goes() {
        for (input, want) in [
            (r#"{"shared_link":1}"#, json!({})),
            (r#"{"shared_link":1,"a":1}"#, json!({"a":1})),
            (r#"{"a":1,"shared_link":1}"#, json!({"a":1})),
            (r#"{"a":1,"shared_link":1,"b":2}"#, json!({"a":1,"b":2})),
            (
                r#"{"shared_link":1,"upload_token":2,"b":2}"#,
                json!({"b":2}),
            ),
        ] {
            assert_eq!(run(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn urls_are_replaced_kept_or_dropped() {
        let v = run(
            r#"{"upload_url":"https://up.example/api/2.0/files/content?x=1",
            "authenticated_download_url":"https://elsewhere/api/2.0/files/1/content",
            "url":"https://elsewhere/s/abc","list":["https://up.example/a","b"],
            "esc":"https:\/\/up.example\/q\"x"}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"upload_url":"https://gw/api/2.0/files/content?x=1",
                "url":"https://elsewhere/s/abc","list":["https://gw/a","b"],
                "esc":"https://gw/q\"x"})
        );
    }

    #[test]
    fn numbers_and_strings_keep_their_spelling() {
        let input = br#"{"a":1.50e+3,"b":-0,"c":"\u00e9\n","d":[true,false,null]}"#;
        assert_eq!(redact(input, &mut Test).unwrap(), input.to_vec());
        // Whitespace between tokens goes.
        assert_eq!(
            redact(b" { \"a\" : [ 1 , 2 ] } \n", &mut Test).unwrap(),
            br#"{"a":[1,2]}"#.to_vec()
        );
    }

    #[test]
    fn what_is_not_json_is_an_error() {
        for bad in [
            "",
            "{",
            "{\"a\":1,}",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "1e",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"a\nb\"",
            "tru",
            "{} {}",
            "{'a':1}",
            "[1 2]",
            "\"abc",
        ] {
            assert_eq!(
                redact(bad.as_bytes(), &mut Test),
                Err(RedactError::Syntax),
                "{bad:?}"
            );
        }
        assert_eq!(redact(b"\"\xff\"", &mut Test), Err(RedactError::Syntax));
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(
            redact(deep.as_bytes(), &mut Test),
            Err(RedactError::TooDeep)
        );
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(redact(ok.as_bytes(), &mut Test).is_ok());
    }

    #[test]
    fn redaction_is_idempotent() {
        let input = br#"{"shared_link":1,"x":{"upload_url":"https://up.example/a"},"y":[{"upload_token":"t"}]}"#;
        let once = redact(input, &mut Test).unwrap();
        // `https://gw/a` is not on the upstream: kept as is the second time.
        assert_eq!(redact(&once, &mut Test).unwrap(), once);
    }
}
