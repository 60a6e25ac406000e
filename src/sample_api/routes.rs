//! Request routing and the handlers of the sample API.

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::shape::{Origins, Page, Rep, Sort, View, version_id};
use super::tree::{Content, Kind, STORED_BYTES, hex};
use super::{ApiError, CountedBody, State, image, json_response, lock, sessions};

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
    let origins = st.origins(parts);
    let view = View {
        origins: &origins,
        fields: query_value(parts, "fields").map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        rep_hints: parts
            .headers
            .get("x-rep-hints")
            .and_then(|v| v.to_str().ok()),
    };
    match (method, segs.as_slice()) {
        ("GET", ["2.0", "users", "me"]) => ok(user_json(&user)),
        ("GET", ["2.0", "shared_items"]) => shared_item(st, parts, &view),
        ("GET", ["2.0", "files", id]) => ok(lock(&st.tree).file_json(id, &view)?),
        ("GET", ["2.0", "files", id, "content"] | ["api", "2.0", "files", id, "content"]) => {
            download(st, id)
        }
        ("GET", ["2.0", "files", id, "thumbnail.png"]) => {
            lock(&st.tree).get(id, Kind::File)?;
            Ok(bytes_response("image/png", image::png(id)))
        }
        ("GET", ["2.0", "files", id, "thumbnail.jpg"]) => {
            lock(&st.tree).get(id, Kind::File)?;
            Ok(bytes_response("image/jpeg", image::jpeg(id)))
        }
        ("GET", ["2.0", "files", id, "versions"]) => {
            lock(&st.tree).get(id, Kind::File)?;
            ok(json!({"total_count": 0, "entries": [], "offset": 0, "limit": 1000}))
        }
        (
            "GET",
            [
                "2.0",
                "internal_files",
                id,
                "versions",
                version,
                "representations",
                rep,
            ],
        ) => {
            let (rep, version) = representation(st, id, version, rep)?;
            ok(rep.entry(id, &version, &origins))
        }
        (
            "GET",
            [
                "api",
                "2.0",
                "internal_files",
                id,
                "versions",
                version,
                "representations",
                rep,
                "content",
                asset,
            ]
            | [
                "2.0",
                "internal_files",
                id,
                "versions",
                version,
                "representations",
                rep,
                "content",
                asset,
            ],
        ) => representation_content(st, id, version, rep, asset),
        ("GET", ["2.0", "search"]) => {
            let query = query_value(parts, "query").unwrap_or_default();
            let ancestors: Vec<String> = query_value(parts, "ancestor_folder_ids")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default();
            let kind = match query_value(parts, "type").as_deref() {
                None => None,
                Some("file") => Some(Kind::File),
                Some("folder") => Some(Kind::Folder),
                Some(_) => return Err(ApiError::bad_request("bad_request", "Invalid type")),
            };
            let page = page(parts, 30, 200)?;
            ok(lock(&st.tree).search(&query, &ancestors, kind, &view, &page))
        }
        ("GET", ["2.0", "recent_items"]) => ok(lock(&st.tree).recents(&view)),
        ("PUT", ["2.0", "files", id]) => {
            let (name, parent) = update_fields(&json_body(body).await?)?;
            let mut tree = lock(&st.tree);
            tree.update(id, Kind::File, name.as_deref(), parent.as_deref())?;
            ok(tree.file_json(id, &view)?)
        }
        ("DELETE", ["2.0", "files", id]) => {
            lock(&st.tree).delete(id, Kind::File, false)?;
            Ok(no_content())
        }
        ("GET", ["2.0", "folders", id]) => {
            let page = page(parts, 100, 1000)?;
            ok(lock(&st.tree).folder_json(id, &view, &page)?)
        }
        ("GET", ["2.0", "folders", id, "items"]) => {
            let page = page(parts, 100, 1000)?;
            ok(lock(&st.tree).items_json(id, &view, &page)?)
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
            let answer = tree.folder_json(&id, &view, &Page::default())?;
            Ok(json_response(StatusCode::CREATED, &answer))
        }
        ("PUT", ["2.0", "folders", id]) => {
            let (name, parent) = update_fields(&json_body(body).await?)?;
            let mut tree = lock(&st.tree);
            tree.update(id, Kind::Folder, name.as_deref(), parent.as_deref())?;
            ok(tree.folder_json(id, &view, &Page::default())?)
        }
        ("DELETE", ["2.0", "folders", id]) => {
            let recursive = query_value(parts, "recursive").is_some_and(|v| v == "true");
            lock(&st.tree).delete(id, Kind::Folder, recursive)?;
            Ok(no_content())
        }
        // Box's upload preflight: checks name and parent (or the file, for a
        // new version), then names where to send the bytes: an absolute URL
        // on the upload host, as Box does.
        ("OPTIONS", ["2.0", "files", "content"]) => {
            let (name, parent) = update_fields(&json_body(body).await?)?;
            let (Some(name), Some(parent)) = (name, parent) else {
                return Err(ApiError::bad_request(
                    "bad_request",
                    "name and parent.id are required",
                ));
            };
            lock(&st.tree).check_name(&parent, &name, None)?;
            ok(preflight_answer(&origins, "content"))
        }
        ("OPTIONS", ["2.0", "files", id, "content"]) => {
            let (name, _) = update_fields(&json_body(body).await?)?;
            let tree = lock(&st.tree);
            let file = tree.get(id, Kind::File)?;
            if let (Some(name), Some(parent)) = (name, &file.parent) {
                tree.check_name(parent, &name, Some(id))?;
            }
            ok(preflight_answer(&origins, &format!("{id}/content")))
        }
        ("POST", ["api", "2.0", "files", "upload_sessions"]) => {
            sessions::create(st, &origins, &json_body(body).await?, None)
        }
        ("POST", ["api", "2.0", "files", id, "upload_sessions"]) => {
            sessions::create(st, &origins, &json_body(body).await?, Some(id))
        }
        ("GET", ["api", "2.0", "files", "upload_sessions", sid]) => {
            sessions::status(st, &origins, sid)
        }
        ("PUT", ["api", "2.0", "files", "upload_sessions", sid]) => {
            sessions::put_part(st, parts, body, sid).await
        }
        ("GET", ["api", "2.0", "files", "upload_sessions", sid, "parts"]) => {
            sessions::list_parts(st, sid)
        }
        ("POST", ["api", "2.0", "files", "upload_sessions", sid, "commit"]) => {
            let commit = json_body(body).await?;
            sessions::commit(st, parts, &view, sid, &commit)
        }
        ("DELETE", ["api", "2.0", "files", "upload_sessions", sid]) => sessions::abort(st, sid),
        ("POST", ["api", "2.0", "files", "content"]) => upload(st, parts, body, None, &view).await,
        ("POST", ["api", "2.0", "files", id, "content"]) => {
            upload(st, parts, body, Some(id), &view).await
        }
        // Any other route answers 2xx, so every route of a policy file can be
        // exercised end to end without this API knowing it.
        _ => ok(json!({"type": "echo", "method": method, "path": parts.uri.path()})),
    }
}

pub(super) fn user_json(id: &str) -> Value {
    let (name, login) = if id == super::DEMO_USER {
        ("Demo User".to_owned(), "demo@example.com".to_owned())
    } else {
        (format!("User {id}"), format!("user{id}@example.com"))
    };
    json!({"type": "user", "id": id, "name": name, "login": login})
}

fn download(st: &State, id: &str) -> Answer {
    let tree = lock(&st.tree);
    let file = tree.get(id, Kind::File)?;
    let mut response = bytes_response("application/octet-stream", file.content.clone());
    // Box names the file for the browser's download; the name is ours, so
    // only its plain characters go in the header.
    let name: String = file
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_ ".contains(*c))
        .collect();
    if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

pub(super) fn bytes_response(
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn preflight_answer(origins: &Origins, tail: &str) -> Value {
    json!({
        "upload_url": format!("{}/api/2.0/files/{tail}?upload_session_id=preflight", origins.upload),
        "upload_token": "sample-upload-token-for-the-parent",
    })
}

/// The representation named in a URL, for the current version of a file.
fn representation(
    st: &State,
    id: &str,
    version: &str,
    rep: &str,
) -> Result<(Rep, String), ApiError> {
    let tree = lock(&st.tree);
    let file = tree.get(id, Kind::File)?;
    let current = version_id(id, file);
    let rep = Rep::from_name(rep).filter(|_| current == version);
    rep.map(|r| (r, current))
        .ok_or_else(|| ApiError::not_found("representation"))
}

fn representation_content(st: &State, id: &str, version: &str, rep: &str, asset: &str) -> Answer {
    let (rep, _) = representation(st, id, version, rep)?;
    if !rep.has_asset(asset) {
        return Err(ApiError::not_found("asset"));
    }
    Ok(match rep.kind {
        "png" => bytes_response("image/png", image::png(id)),
        "jpg" => bytes_response("image/jpeg", image::jpeg(id)),
        "text" => {
            let content = lock(&st.tree).get(id, Kind::File)?.content.clone();
            bytes_response("text/plain; charset=utf-8", content)
        }
        _ => {
            let content = lock(&st.tree).get(id, Kind::File)?.content.clone();
            bytes_response("application/pdf", content)
        }
    })
}

/// `offset`/`limit` (or `usemarker`/`marker`), `sort` and `direction`.
fn page(parts: &Parts, default_limit: usize, max_limit: usize) -> Result<Page, ApiError> {
    let bad = |m: &str| ApiError::bad_request("bad_request", m);
    let number = |key: &str| -> Result<Option<usize>, ApiError> {
        query_value(parts, key)
            .map(|v| {
                v.parse()
                    .map_err(|_| bad("offset and limit must be numbers"))
            })
            .transpose()
    };
    let marker = query_value(parts, "usemarker").is_some_and(|v| v == "true");
    let offset = match (marker, query_value(parts, "marker")) {
        (true, Some(m)) => m
            .strip_prefix('m')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("Invalid marker"))?,
        _ => number("offset")?.unwrap_or(0),
    };
    let limit = number("limit")?
        .unwrap_or(default_limit)
        .clamp(1, max_limit);
    let sort = match query_value(parts, "sort").as_deref() {
        None | Some("name") => Sort::Name,
        Some("id") => Sort::Id,
        Some("date") => Sort::Date,
        Some("size") => Sort::Size,
        Some(_) => return Err(bad("Invalid sort")),
    };
    let descending = match query_value(parts, "direction") {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("asc") => false,
        Some(d) if d.eq_ignore_ascii_case("desc") => true,
        Some(_) => return Err(bad("Invalid direction")),
    };
    Ok(Page {
        offset,
        limit,
        sort,
        descending,
        marker,
    })
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

pub(super) fn query_value(parts: &Parts, key: &str) -> Option<String> {
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub(super) async fn json_body(body: &mut CountedBody) -> Result<Value, ApiError> {
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
async fn upload(
    st: &State,
    parts: &Parts,
    body: &mut CountedBody,
    target: Option<&str>,
    view: &View<'_>,
) -> Answer {
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
    let entry = tree.file_json(&id, view)?;
    Ok(json_response(
        status,
        &json!({"total_count": 1, "entries": [entry]}),
    ))
}

/// `GET /2.0/shared_items`: the item behind the `BoxApi: shared_link=<url>`
/// header, with its `shared_link` (Box answers 404 for a link it does not know).
fn shared_item(st: &State, parts: &Parts, view: &View<'_>) -> Answer {
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
        "file" => lock(&st.tree).file_json(&link.id, view)?,
        "folder" => lock(&st.tree).folder_json(&link.id, view, &Page::default())?,
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
