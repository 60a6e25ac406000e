//! A small in-memory content API shaped like Box's, for two callers: the
//! offline `scopegate demo` uses it as its upstream, and the integration
//! tests use it as a *recording* upstream, to assert on exactly what the
//! gateway let through.
//!
//! Seeded tree (ids are strings, as in Box):
//!
//! ```text
//! folder 0 "All Files"
//! ├── folder 100 "Projects"
//! │   ├── file 1001 "plan.txt"            "the plan\n"
//! │   └── folder 110 "Reports"
//! │       ├── file 1002 "summary.txt"
//! │       └── folder 111 "2026"
//! │           └── file 1003 "q3.pdf"
//! └── folder 200 "Private"
//!     └── file 2001 "secret.txt"          "top secret\n"
//! ```
//!
//! Every token sees the whole tree: access control is the gateway's job, and
//! a permissive upstream makes any leak through the gateway visible.
//! Layout: `routes` maps requests to handlers, `tree` holds the items,
//! `shape` their JSON forms (`fields`, collections, representations),
//! `sessions` chunked uploads, `image` the thumbnails; uploads are read
//! with `multer`, a standard streaming multipart parser independent of the
//! gateway's own envelope reader.
//!
//! It answers what Box UI Elements ask for: `fields` selections, paged and
//! sorted `item_collection`s, `permissions`, search with
//! `ancestor_folder_ids`, representations (`X-Rep-Hints`) and thumbnails
//! as real PNG images, download, preflight and upload-session URLs that are
//! absolute on its own host (as Box's are on its API, upload and download
//! hosts; see [`SampleApi::set_origins`]).

mod image;
mod routes;
mod sessions;
mod shape;
mod tree;

pub use shape::Origins;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};

/// How long `serve` waits for in-flight requests after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The user behind the token given to [`SampleApi::new`].
const DEMO_USER: &str = "1001";

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// As sent on the wire, so tests can check what the gateway rewrote.
    pub path_and_query: String,
    /// Every header received, including `Authorization`: tests assert which
    /// token the gateway forwarded.
    pub headers: HeaderMap,
    /// Body bytes actually read; 0 until the body has been consumed.
    pub body_len: u64,
}

/// A handle on one sample API; clones share the same state.
#[derive(Clone)]
pub struct SampleApi {
    state: Arc<State>,
}

/// RFC 7662 facts about a token registered with `add_introspectable`.
struct Introspection {
    scope: String,
    sub: String,
    iat: u64,
    exp: u64,
}

struct State {
    /// Bearer token -> user id.
    tokens: Mutex<HashMap<String, String>>,
    /// Tokens that `POST /oauth2/introspect` reports as active.
    introspectable: Mutex<HashMap<String, Introspection>>,
    /// A plain mutex: no lock is ever held across an await.
    tree: Mutex<tree::Tree>,
    /// Requests in arrival order, each tagged with a sequence number so the
    /// body length can be filled in later even if the log was cleared.
    recorded: Mutex<Vec<(u64, Recorded)>>,
    next_seq: AtomicU64,
    /// Lets tests check the gateway's introspection cache.
    introspection_calls: AtomicUsize,
    /// Lets tests check the gateway's ancestry cache.
    item_info_calls: AtomicUsize,
    /// Shared link URL -> what `GET /2.0/shared_items` answers for it.
    shared_links: Mutex<HashMap<String, SharedLink>>,
    /// Open chunked upload sessions by id.
    sessions: Mutex<HashMap<String, sessions::Session>>,
    next_session: AtomicU64,
    /// Part size of new upload sessions.
    part_size: AtomicU64,
    /// Hosts named in answers; `None`: the scheme and Host of the request.
    origins: Mutex<Option<Origins>>,
}

/// A shared link registered with [`SampleApi::add_shared_link`].
#[derive(Clone)]
struct SharedLink {
    /// "file", "folder" or another Box type ("web_link").
    kind: String,
    id: String,
    password: bool,
}

impl SampleApi {
    /// Seeded with the demo tree. `parent_token` is the one full-scoped token
    /// the API accepts, for user "1001" ("Demo User", demo@example.com).
    pub fn new(parent_token: &str) -> SampleApi {
        let tokens = HashMap::from([(parent_token.to_owned(), DEMO_USER.to_owned())]);
        SampleApi {
            state: Arc::new(State {
                tokens: Mutex::new(tokens),
                introspectable: Mutex::new(HashMap::new()),
                tree: Mutex::new(tree::Tree::seeded()),
                recorded: Mutex::new(Vec::new()),
                next_seq: AtomicU64::new(0),
                introspection_calls: AtomicUsize::new(0),
                item_info_calls: AtomicUsize::new(0),
                shared_links: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                next_session: AtomicU64::new(1),
                part_size: AtomicU64::new(sessions::DEFAULT_PART_SIZE),
                origins: Mutex::new(None),
            }),
        }
    }

    /// Accepts another bearer token as valid for the given user id.
    pub fn add_token(&self, token: &str, user_id: &str) {
        lock(&self.state.tokens).insert(token.to_owned(), user_id.to_owned());
    }

    /// Registers a token as active at `POST /oauth2/introspect`, with these
    /// space-separated scopes, subject, issue time and expiry (unix seconds).
    pub fn add_introspectable(&self, token: &str, scope: &str, sub: &str, iat: u64, exp: u64) {
        let facts = Introspection {
            scope: scope.to_owned(),
            sub: sub.to_owned(),
            iat,
            exp,
        };
        lock(&self.state.introspectable).insert(token.to_owned(), facts);
    }

    /// Names these hosts in answers (download and representation URLs,
    /// upload URLs and session endpoints) instead of the request's own, as
    /// Box names upload.box.com and dl.boxcloud.com. Each must be served by
    /// this API too (one [`SampleApi`] can serve several listeners).
    pub fn set_origins(&self, origins: Origins) {
        *lock(&self.state.origins) = Some(origins);
    }

    /// Part size of upload sessions created from now on (default 8 MiB, as
    /// Box's): tests use small parts.
    pub fn set_part_size(&self, bytes: u64) {
        self.state.part_size.store(bytes.max(1), Ordering::SeqCst);
    }

    /// Serves HTTP/1.1 and h2c on `listener` until `shutdown` resolves, then
    /// lets in-flight requests finish (for a few seconds at most).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Usually fd exhaustion: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let api = self.clone();
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(api.handle(req).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    }

    /// Every request received so far, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.state.recorded)
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Registers a shared link: `GET /2.0/shared_items` with `BoxApi:
    /// shared_link=<url>` then answers with the item of this `kind` ("file",
    /// "folder" or e.g. "web_link") and id, password-protected or not.
    pub fn add_shared_link(&self, url: &str, kind: &str, id: &str, password: bool) {
        let link = SharedLink {
            kind: kind.to_owned(),
            id: id.to_owned(),
            password,
        };
        lock(&self.state.shared_links).insert(url.to_owned(), link);
    }

    pub fn clear_recorded(&self) {
        lock(&self.state.recorded).clear();
    }

    /// Number of `POST /oauth2/introspect` calls received.
    pub fn introspection_calls(&self) -> usize {
        self.state.introspection_calls.load(Ordering::SeqCst)
    }

    /// Requests for `GET /2.0/files/{id}` or `GET /2.0/folders/{id}`: how the
    /// gateway learns ancestry, so tests count these to check its caching.
    pub fn item_info_calls(&self) -> usize {
        self.state.item_info_calls.load(Ordering::SeqCst)
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let seq = self.state.next_seq.fetch_add(1, Ordering::SeqCst);
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let head = Recorded {
            method: parts.method.clone(),
            path_and_query,
            headers: parts.headers.clone(),
            body_len: 0,
        };
        lock(&self.state.recorded).push((seq, head));

        let mut body = CountedBody {
            inner: body,
            read: 0,
        };
        let response = routes::route(&self.state, &parts, &mut body)
            .await
            .unwrap_or_else(ApiError::into_response);
        // Reading what the handler left makes body_len the full size sent,
        // and keeps the connection reusable.
        body.drain().await;
        let mut recorded = lock(&self.state.recorded);
        if let Some((_, r)) = recorded.iter_mut().rev().find(|(s, _)| *s == seq) {
            r.body_len = body.read;
        }
        response
    }
}

impl State {
    /// The hosts to name in this request's answer.
    fn origins(&self, parts: &http::request::Parts) -> Origins {
        if let Some(o) = lock(&self.origins).clone() {
            return o;
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        let here = format!("http://{host}");
        Origins {
            api: here.clone(),
            upload: here.clone(),
            download: here,
        }
    }

    fn part_size(&self) -> u64 {
        self.part_size.load(Ordering::SeqCst)
    }

    /// Session ids look like Box's: 32 upper-case hex digits.
    fn new_session_id(&self) -> String {
        let n = self.next_session.fetch_add(1, Ordering::SeqCst);
        format!("{:032X}", 0xD5E3_F7A0_0000_0000_u64 + n)
    }

    /// The user id behind the request's bearer token.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        token
            .and_then(|t| lock(&self.tokens).get(t).cloned())
            .ok_or_else(ApiError::unauthorized)
    }
}

/// A request body that counts what has been read from it.
struct CountedBody {
    inner: Incoming,
    read: u64,
}

impl CountedBody {
    /// The next data chunk; trailers are skipped.
    async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        while let Some(frame) = self.inner.frame().await {
            let frame = frame.map_err(|_| {
                ApiError::bad_request("bad_request", "Request body could not be read")
            })?;
            if let Ok(data) = frame.into_data() {
                self.read += data.len() as u64;
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// The whole body, refused beyond `limit` bytes.
    async fn collect(&mut self, limit: usize) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if out.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    "Request body is too large",
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    async fn drain(&mut self) {
        while let Ok(Some(_)) = self.chunk().await {}
    }
}

/// A refusal in Box's error shape; the only way handlers fail.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Box's `context_info` (e.g. the conflicting item of a 409).
    context: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: &str) -> ApiError {
        ApiError {
            status,
            code,
            message: message.to_owned(),
            context: None,
        }
    }

    fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid access token",
        )
    }

    fn not_found(kind: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("Could not find the specified resource ({kind})"),
            context: None,
        }
    }

    fn bad_request(code: &'static str, message: &str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 409 naming the item in the way, as Box does (the Content Uploader
    /// reads `context_info.conflicts.id` to upload a new version instead).
    fn conflict(existing: Value) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            "item_name_in_use",
            "Item with the same name already exists",
        );
        e.context = Some(json!({"conflicts": existing}));
        e
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut body = json!({
            "type": "error",
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
        });
        if let Some(c) = self.context {
            body["context_info"] = c;
        }
        json_response(self.status, &body)
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Locks even after a panic elsewhere: every critical section here leaves
/// the data consistent, so the poison flag carries no information.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
