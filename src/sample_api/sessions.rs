//! Box's chunked uploads: an upload session is created for a folder (or a
//! file, for a new version), receives parts with `Content-Range` and a SHA-1
//! `Digest`, lists them, and is committed into a file or aborted.
//!
//! The parts are kept in memory until the commit (a session is refused
//! above [`MAX_SESSION_BYTES`]): this is a test server, and the whole-file
//! digest can only be checked over the bytes in order.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::shape::{Origins, View, iso8601};
use super::tree::{Content, Kind, hex};
use super::{ApiError, CountedBody, State, json_response, lock};

type Answer = Result<Response<Full<Bytes>>, ApiError>;

/// Box's part size for most files.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;

/// Larger sessions are refused: every part is held until the commit.
const MAX_SESSION_BYTES: u64 = 512 * 1024 * 1024;

/// How long a session lives, as Box's (7 days).
const SESSION_LIFE: u64 = 7 * 86_400;

/// One open session.
pub struct Session {
    /// The folder a new file goes into, or the file a new version replaces.
    target: Target,
    name: String,
    size: u64,
    part_size: u64,
    expires_at: u64,
    /// Parts by offset.
    parts: BTreeMap<u64, Part>,
}

enum Target {
    Folder(String),
    File(String),
}

struct Part {
    id: String,
    sha1: String,
    data: Bytes,
}

impl Part {
    fn json(&self, offset: u64) -> Value {
        json!({"part_id": self.id, "offset": offset, "size": self.data.len(), "sha1": self.sha1})
    }
}

fn session_json(id: &str, s: &Session, o: &Origins) -> Value {
    let base = format!("{}/api/2.0/files/upload_sessions/{id}", o.upload);
    json!({
        "id": id, "type": "upload_session",
        "session_expires_at": iso8601(s.expires_at),
        "part_size": s.part_size,
        "total_parts": s.size.div_ceil(s.part_size).max(1),
        "num_parts_processed": s.parts.len(),
        "session_endpoints": {
            "upload_part": base, "commit": format!("{base}/commit"), "abort": base,
            "list_parts": format!("{base}/parts"), "status": base, "log_event": format!("{base}/log"),
        },
    })
}

fn not_found() -> ApiError {
    ApiError::not_found("upload session")
}

/// `POST /api/2.0/files/upload_sessions` (`{folder_id, file_size, file_name}`)
/// or `POST /api/2.0/files/{id}/upload_sessions` (`{file_size, file_name?}`).
pub fn create(st: &State, o: &Origins, body: &Value, file: Option<&str>) -> Answer {
    let bad = |m: &str| ApiError::bad_request("bad_request", m);
    let size = body
        .get("file_size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("file_size must be a number"))?;
    if size > MAX_SESSION_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_size_limit_exceeded",
            "The sample API holds sessions of at most 512 MiB",
        ));
    }
    let name = match body.get("file_name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("file_name must be a string")),
    };
    let tree = lock(&st.tree);
    let (target, name) = match file {
        Some(id) => {
            let item = tree.get(id, Kind::File)?;
            let name = name.unwrap_or_else(|| item.name.clone());
            if let Some(parent) = &item.parent {
                tree.check_name(parent, &name, Some(id))?;
            }
            (Target::File(id.to_owned()), name)
        }
        None => {
            let folder = body
                .get("folder_id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("folder_id must be a string"))?;
            let name = name.ok_or_else(|| bad("file_name is required"))?;
            tree.check_name(folder, &name, None)?;
            (Target::Folder(folder.to_owned()), name)
        }
    };
    drop(tree);
    let session = Session {
        target,
        name,
        size,
        part_size: st.part_size(),
        expires_at: crate::clock::unix_now() + SESSION_LIFE,
        parts: BTreeMap::new(),
    };
    let id = st.new_session_id();
    let answer = session_json(&id, &session, o);
    lock(&st.sessions).insert(id, session);
    Ok(json_response(StatusCode::CREATED, &answer))
}

pub fn status(st: &State, o: &Origins, sid: &str) -> Answer {
    let sessions = lock(&st.sessions);
    let s = sessions.get(sid).ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &session_json(sid, s, o)))
}

pub fn abort(st: &State, sid: &str) -> Answer {
    lock(&st.sessions).remove(sid).ok_or_else(not_found)?;
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

pub fn list_parts(st: &State, sid: &str) -> Answer {
    let sessions = lock(&st.sessions);
    let s = sessions.get(sid).ok_or_else(not_found)?;
    let entries: Vec<Value> = s.parts.iter().map(|(off, p)| p.json(*off)).collect();
    let answer =
        json!({"entries": entries, "total_count": entries.len(), "offset": 0, "limit": 1000});
    Ok(json_response(StatusCode::OK, &answer))
}

/// `Digest: sha=<base64 SHA-1>` (RFC 3230), the only form Box takes.
fn digest(parts: &Parts) -> Result<Vec<u8>, ApiError> {
    parts
        .headers
        .get("digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("sha="))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .filter(|d| d.len() == 20)
        .ok_or_else(|| ApiError::bad_request("invalid_digest", "Digest must be sha=<base64 SHA-1>"))
}

fn sha1(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// `Content-Range: bytes <first>-<last>/<total>`.
fn content_range(parts: &Parts) -> Option<(u64, u64, u64)> {
    let v = parts.headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let n = |s: &str| -> Option<u64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    Some((n(first)?, n(last)?, n(total)?))
}

/// `PUT /api/2.0/files/upload_sessions/{id}`: one part.
pub async fn put_part(st: &State, parts: &Parts, body: &mut CountedBody, sid: &str) -> Answer {
    let range_error = |m: &str| {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            m,
        )
    };
    let (size, part_size) = {
        let sessions = lock(&st.sessions);
        let s = sessions.get(sid).ok_or_else(not_found)?;
        (s.size, s.part_size)
    };
    let (first, last, total) =
        content_range(parts).ok_or_else(|| range_error("Content-Range must be bytes a-b/total"))?;
    let len = last.checked_sub(first).map(|l| l + 1);
    let expected = part_size.min(size.saturating_sub(first));
    if total != size || first % part_size != 0 || len != Some(expected) || expected == 0 {
        return Err(range_error(
            "The range is not one whole part of this session",
        ));
    }
    let want = digest(parts)?;
    let limit = usize::try_from(expected).unwrap_or(usize::MAX);
    let mut data = BytesMut::new();
    while let Some(chunk) = body.chunk().await? {
        if data.len() + chunk.len() > limit {
            return Err(range_error("The body is longer than its Content-Range"));
        }
        data.extend_from_slice(&chunk);
    }
    if data.len() != limit {
        return Err(range_error("The body is shorter than its Content-Range"));
    }
    let got = sha1(&data);
    if got != want {
        return Err(ApiError::bad_request(
            "invalid_digest",
            "The Digest does not match the part",
        ));
    }
    let part = Part {
        id: hex(&sha1(format!("{sid}:{first}").as_bytes())[..4]).to_uppercase(),
        sha1: hex(&got),
        data: data.freeze(),
    };
    let answer = json!({"part": part.json(first)});
    let mut sessions = lock(&st.sessions);
    let s = sessions.get_mut(sid).ok_or_else(not_found)?;
    if let Some(old) = s.parts.get(&first)
        && old.sha1 != part.sha1
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "range_conflict",
            "Another part was already uploaded for this range",
        ));
    }
    s.parts.insert(first, part);
    Ok(json_response(StatusCode::OK, &answer))
}

/// `POST .../commit`: the parts listed must be exactly the parts received,
/// in order and covering the file; the `Digest` is the whole file's. As
/// Box's upload call, `attributes` may carry `name` and `parent.id`, and
/// this API honours them (so a gateway must check them).
pub fn commit(st: &State, parts: &Parts, view: &View, sid: &str, body: &Value) -> Answer {
    let bad = |m: &str| ApiError::bad_request("bad_request", m);
    let want = digest(parts)?;
    let listed: Vec<(String, u64)> = body
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("parts must be a list"))?
        .iter()
        .map(|p| {
            let id = p.get("part_id")?.as_str()?.to_owned();
            Some((id, p.get("offset")?.as_u64()?))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| bad("each part needs part_id and offset"))?;
    let attrs = body.get("attributes").cloned().unwrap_or(json!({}));
    let attr_name = attrs.get("name").and_then(Value::as_str);
    let attr_parent = attrs
        .get("parent")
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str);

    let mut sessions = lock(&st.sessions);
    let s = sessions.get(sid).ok_or_else(not_found)?;
    let received: Vec<(String, u64)> = s.parts.iter().map(|(o, p)| (p.id.clone(), *o)).collect();
    let covered: u64 = s.parts.values().map(|p| p.data.len() as u64).sum();
    if listed != received || covered != s.size {
        return Err(bad("The parts do not match the parts uploaded"));
    }
    let mut whole = BytesMut::with_capacity(usize::try_from(s.size).unwrap_or(0));
    for p in s.parts.values() {
        whole.extend_from_slice(&p.data);
    }
    if sha1(&whole) != want {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "sha1_mismatch",
            "The Digest does not match the file",
        ));
    }
    let name = attr_name.unwrap_or(&s.name).to_owned();
    let mut tree = lock(&st.tree);
    let id = match &s.target {
        Target::Folder(folder) => {
            let folder = attr_parent.unwrap_or(folder);
            tree.create_file(&name, folder, Content::of(&whole))?
        }
        Target::File(id) => {
            tree.new_version(id, Some(&name), Content::of(&whole))?;
            id.clone()
        }
    };
    sessions.remove(sid);
    let entry = tree.file_json(&id, view)?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"total_count": 1, "entries": [entry]}),
    ))
}
