//! Request routing and the handlers of the sample API.

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::tree::{Content, Kind, STORED_BYTES, hex};
use super::{ApiError, CountedBody, State, json_response, lock};

type Answer = Result<Response<Full<Bytes>>, ApiError>;

/// JSON request bodies here are a few fields; anything bigger is abuse.
const JSON_LIMIT: usize = 1024 * 1024;

pub(super) async fn route(st: &State, parts: &Parts, body: &mut CountedBody) -> Answer {
    let method = parts.method.as_str();
    let segs: Vec<&str> = parts.uri.path().split('/').skip(1).collect();

    // The OAuth endpoints authenticate the client, not a bearer token.
    match (method, segs.as_slice()) {
        ("POST", ["oauth2", "introspect"]) => return introspect(st, body).await,
        ("POST", ["oauth2", "token"]) => {
            let form = form(body).await?;
            let grant_type = form_value(&form, "grant_type");
            return Ok(json_response(
                StatusCode::OK,
                &json!({"forwarded": true, "grant_type": grant_type}),
            ));
        }
        ("POST", ["oauth2", "revoke"]) => return Ok(Response::new(Full::new(Bytes::new()))),
        ("GET", ["2.0", "files" | "folders", _]) => {
            st.item_info_calls.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }

    let user = st.authenticate(&parts.headers)?;
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match (method, segs.as_slice()) {
        ("GET", ["2.0", "users", "me"]) => ok(user_json(&user)),
        ("GET", ["2.0", "shared_items"]) => shared_item(st, parts),
        ("GET", ["2.0", "files", id]) => ok(lock(&st.tree).file_json(id)?),
        ("GET", ["2.0", "files", id, "content"]) => download(st, id),
        ("PUT", ["2.0", "files", id]) => {
            let (name, parent) = update_fields(&json_body(body).await?)?;
            let mut tree = lock(&st.tree);
            tree.update(id, Kind::File, name.as_deref(), parent.as_deref())?;
            ok(tree.file_json(id)?)
        }
        ("DELETE", ["2.0", "files", id]) => {
            lock(&st.tree).delete(id, Kind::File, false)?;
            Ok(no_content())
        }
        ("GET", ["2.0", "folders", id]) => ok(lock(&st.tree).folder_json(id)?),
        ("GET", ["2.0", "folders", id, "items"]) => {
            let offset = query_number(parts, "offset").unwrap_or(0);
            let limit = query_number(parts, "limit").unwrap_or(100).clamp(1, 1000);
            ok(lock(&st.tree).items_json(id, offset, limit)?)
        }
        ("POST", ["2.0", "folders"]) => {
            let (name, parent) = update_fields(&json_body(body).await?)?;
            let (Some(name), Some(parent)) = (name, parent) else {
                return Err(ApiError::bad_request(
                    "bad_request",
                    "name and parent.id are required",
                ));
            };
            let mut tree = lock(&st.tree);
            let id = tree.create_folder(&name, &parent)?;
            Ok(json_response(StatusCode::CREATED, &tree.folder_json(&id)?))
        }
        ("PUT", ["2.0", "folders", id]) => {
            let (name, parent) = update_fields(&json_body(body).await?)?;
            let mut tree = lock(&st.tree);
            tree.update(id, Kind::Folder, name.as_deref(), parent.as_deref())?;
            ok(tree.folder_json(id)?)
        }
        ("DELETE", ["2.0", "folders", id]) => {
            let recursive = query_value(parts, "recursive").is_some_and(|v| v == "true");
            lock(&st.tree).delete(id, Kind::Folder, recursive)?;
            Ok(no_content())
        }
        // Box's upload preflight: checks name and parent, then names the
        // upload host to use (here: this server, from the Host header).
        ("OPTIONS", ["2.0", "files", "content"]) => {
            let (name, parent) = update_fields(&json_body(body).await?)?;
            let (Some(_), Some(parent)) = (name, parent) else {
                return Err(ApiError::bad_request(
                    "bad_request",
                    "name and parent.id are required",
                ));
            };
            lock(&st.tree).get(&parent, Kind::Folder)?;
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            ok(json!({
                "upload_url": format!("http://{host}/api/2.0/files/content?upload_session_id=preflight-1"),
                "upload_token": null
            }))
        }
        ("POST", ["api", "2.0", "files", "content"]) => upload(st, parts, body, None).await,
        ("POST", ["api", "2.0", "files", id, "content"]) => upload(st, parts, body, Some(id)).await,
        // Any other route answers 2xx, so every route of a policy file can be
        // exercised end to end without this API knowing it.
        _ => ok(json!({"type": "echo", "method": method, "path": parts.uri.path()})),
    }
}

fn user_json(id: &str) -> Value {
    let (name, login) = if id == super::DEMO_USER {
        ("Demo User".to_owned(), "demo@example.com".to_owned())
    } else {
        (format!("User {id}"), format!("user{id}@example.com"))
    };
    json!({"type": "user", "id": id, "name": name, "login": login})
}

fn download(st: &State, id: &str) -> Answer {
    let content = lock(&st.tree).get(id, Kind::File)?.content.clone();
    let mut response = Response::new(Full::new(content));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

async fn introspect(st: &State, body: &mut CountedBody) -> Answer {
    st.introspection_calls.fetch_add(1, Ordering::SeqCst);
    let form = form(body).await?;
    let Some(token) = form_value(&form, "token") else {
        return Ok(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": "token is required"}),
        ));
    };
    let answer = match lock(&st.introspectable).get(token) {
        Some(i) => json!({
            "active": true, "scope": i.scope, "sub": i.sub, "exp": i.exp, "iat": i.iat,
            "token_type": "bearer", "client_id": "sample",
        }),
        None => json!({"active": false}),
    };
    Ok(json_response(StatusCode::OK, &answer))
}

async fn form(body: &mut CountedBody) -> Result<Vec<(String, String)>, ApiError> {
    let bytes = body.collect(JSON_LIMIT).await?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

fn form_value<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn query_value(parts: &Parts, key: &str) -> Option<String> {
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn query_number(parts: &Parts, key: &str) -> Option<usize> {
    query_value(parts, key)?.parse().ok()
}

async fn json_body(body: &mut CountedBody) -> Result<Value, ApiError> {
    let bytes = body.collect(JSON_LIMIT).await?;
    parse_json(&bytes)
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::bad_request("bad_request", "Body is not a JSON object"))
}

/// `name` and `parent.id` from an item body, each optional but typed.
fn update_fields(v: &Value) -> Result<(Option<String>, Option<String>), ApiError> {
    let bad = || ApiError::bad_request("bad_request", "name and parent.id must be strings");
    let name = match v.get("name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad()),
    };
    let parent = match v.get("parent").map(|p| p.get("id")) {
        None => None,
        Some(Some(Value::String(s))) => Some(s.clone()),
        Some(_) => return Err(bad()),
    };
    Ok((name, parent))
}

/// A file part as it streams past: only its head is kept.
struct FileSink {
    head: BytesMut,
    size: u64,
    sha1: ring::digest::Context,
}

impl FileSink {
    fn new() -> FileSink {
        FileSink {
            head: BytesMut::new(),
            size: 0,
            sha1: ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        }
    }

    fn write(&mut self, data: &[u8]) {
        let room = STORED_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&data[..room.min(data.len())]);
        self.size += data.len() as u64;
        self.sha1.update(data);
    }

    fn finish(self) -> Content {
        Content {
            head: self.head.freeze(),
            size: self.size,
            sha1: hex(self.sha1.finish().as_ref()),
        }
    }
}

/// Upload of a new file (`target` None) or a new version, read with
/// `multer` (the parser axum uses), not with the gateway's envelope reader:
/// the tests then see what a standard parser upstream makes of what the
/// gateway let through. Like Box: the part named `attributes` holds the
/// JSON, a part with a filename (whatever its name) is the file, and the
/// attributes must come before it, which is what lets the file be streamed
/// rather than held until its destination is known. As a permissive
/// upstream would, the latest `attributes` before the last file part wins.
async fn upload(st: &State, parts: &Parts, body: &mut CountedBody, target: Option<&str>) -> Answer {
    let boundary = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            ApiError::bad_request("bad_request", "Expected a multipart/form-data body")
        })?;
    let stream = futures_util::stream::unfold(body, |b| async move {
        match b.chunk().await {
            Ok(Some(c)) => Some((Ok::<Bytes, std::io::Error>(c), b)),
            Ok(None) => None,
            Err(_) => Some((Err(std::io::Error::other("body broke")), b)),
        }
    });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut attributes: Option<Vec<u8>> = None;
    let mut file: Option<FileSink> = None;
    let mut destination = None;
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        if field.name() == Some("attributes") {
            let mut attrs = Vec::new();
            while let Some(data) = field.chunk().await.map_err(multipart_error)? {
                if attrs.len() + data.len() > JSON_LIMIT {
                    return Err(ApiError::bad_request(
                        "bad_request",
                        "attributes part too large",
                    ));
                }
                attrs.extend_from_slice(&data);
            }
            attributes = Some(attrs);
        } else if field.file_name().is_some() {
            destination = Some(check_destination(st, target, attributes.as_deref())?);
            let mut sink = FileSink::new();
            while let Some(data) = field.chunk().await.map_err(multipart_error)? {
                sink.write(&data);
            }
            file = Some(sink);
        }
    }
    let (Some(file), Some((name, parent))) = (file, destination) else {
        return Err(ApiError::bad_request("bad_request", "No file part"));
    };
    // The tree may have changed while the file streamed: check again.
    let mut tree = lock(&st.tree);
    let (id, status) = match (target, parent) {
        (Some(id), _) => {
            tree.new_version(id, name.as_deref(), file.finish())?;
            (id.to_owned(), StatusCode::OK)
        }
        (None, Some(parent)) => {
            let name = name.unwrap_or_default();
            (
                tree.create_file(&name, &parent, file.finish())?,
                StatusCode::CREATED,
            )
        }
        (None, None) => return Err(ApiError::bad_request("bad_request", "No parent folder")),
    };
    let entry = tree.file_json(&id)?;
    Ok(json_response(
        status,
        &json!({"total_count": 1, "entries": [entry]}),
    ))
}

/// `GET /2.0/shared_items`: the item behind the `BoxApi: shared_link=<url>`
/// header, with its `shared_link` (Box answers 404 for a link it does not know).
fn shared_item(st: &State, parts: &Parts) -> Answer {
    let url = parts
        .headers
        .get("boxapi")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("shared_link="))
        .ok_or_else(|| ApiError::bad_request("bad_request", "BoxApi: shared_link= is required"))?;
    let link = lock(&st.shared_links).get(url).cloned().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "Shared link not found")
    })?;
    let mut item = match link.kind.as_str() {
        "file" => lock(&st.tree).file_json(&link.id)?,
        "folder" => lock(&st.tree).folder_json(&link.id)?,
        other => json!({"type": other, "id": link.id}),
    };
    item["shared_link"] = json!({
        "url": url,
        "access": "open",
        "is_password_enabled": link.password,
    });
    Ok(json_response(StatusCode::OK, &item))
}

fn multipart_error(e: multer::Error) -> ApiError {
    tracing::debug!(error = %e, "sample API: unreadable multipart body");
    ApiError::bad_request("bad_request", "Malformed multipart body")
}

/// Name and parent for an upload, checked as soon as the file part starts so
/// a large upload to a bad destination is refused before it streams.
fn check_destination(
    st: &State,
    target: Option<&str>,
    attributes: Option<&[u8]>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let attrs = match attributes {
        Some(raw) => parse_json(raw)?,
        None if target.is_some() => json!({}),
        None => {
            return Err(ApiError::bad_request(
                "metadata_after_file_contents",
                "The attributes part must come before the file part",
            ));
        }
    };
    let (name, parent) = update_fields(&attrs)?;
    let tree = lock(&st.tree);
    match target {
        Some(id) => {
            let current = tree.get(id, Kind::File)?;
            if let (Some(name), Some(parent)) = (&name, &current.parent) {
                tree.check_name(parent, name, Some(id))?;
            }
        }
        None => match (&name, &parent) {
            (Some(name), Some(parent)) => tree.check_name(parent, name, None)?,
            _ => {
                return Err(ApiError::bad_request(
                    "bad_request",
                    "attributes need name and parent.id",
                ));
            }
        },
    }
    Ok((name, parent))
}
