//! The Shared Signals receiver against a real transmitter on port 0: it
//! serves its `/.well-known/ssf-configuration`, JWKS, stream configuration
//! and status, verification and poll endpoints, and signs SETs with real
//! RS256 and ES256 keys made for the test (ring; RSA by `openssl genpkey`).
//! The gateways are real: in-process servers on port 0 and, for the
//! fleet, `scopegate serve` processes sharing a Redis stream.

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};
use support::*;
use tokio::net::TcpListener;

const AUDIENCE: &str = "https://gateway.test";
const PUSH_AUTH: &str = "Bearer push-secret-0123456789";
const MGMT: &str = "transmitter-management-token";
const STREAM: &str = "stream-1";
const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const SSF: &str = "https://schemas.openid.net/secevent/ssf/event-type/";
/// The sample API's user behind `PARENT`.
const USER: &str = "1001";
const LOGIN: &str = "demo@example.com";

// ---------------------------------------------------------------- keys

enum Signer {
    Rs(RsaKeyPair),
    Es(EcdsaKeyPair),
}

struct Key {
    kid: String,
    signer: Signer,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

impl Key {
    fn rsa(kid: &str) -> Key {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
            ])
            .output()
            .expect("openssl is installed");
        // OpenSSL 3 writes an RSA key as PKCS#1 RSAPrivateKey in DER.
        assert!(out.status.success(), "openssl genpkey failed");
        Key {
            kid: kid.into(),
            signer: Signer::Rs(RsaKeyPair::from_der(&out.stdout).unwrap()),
        }
    }

    fn ec(kid: &str) -> Key {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Es(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()),
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rs(_) => "RS256",
            Signer::Es(_) => "ES256",
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rs(k) => {
                let c: ring::rsa::PublicKeyComponents<Vec<u8>> = k.public().into();
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Es(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
        }
    }

    /// A compact JWS of `claims` under this key, with `header` merged in.
    fn sign_with(&self, claims: &Value, header: Value) -> String {
        let mut h = json!({"alg": self.alg(), "kid": self.kid, "typ": "secevent+jwt"});
        for (k, v) in header.as_object().unwrap() {
            h[k] = v.clone();
        }
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Rs(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Signer::Es(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with(claims, json!({}))
    }
}

// ---------------------------------------------------------------- transmitter

#[derive(Default)]
struct TxState {
    keys: Vec<Arc<Key>>,
    jwks_fetches: usize,
    status: String,
    /// SETs waiting to be polled (jti, SET), until acknowledged.
    queue: VecDeque<(String, String)>,
    acks: Vec<String>,
    set_errs: Vec<(String, Value)>,
    polls: usize,
    verify_states: Vec<String>,
    /// Authorization headers seen on management and poll calls.
    bad_auth: usize,
}

#[derive(Clone)]
struct Transmitter {
    addr: SocketAddr,
    st: Arc<Mutex<TxState>>,
    wake: Arc<tokio::sync::Notify>,
}

impl Transmitter {
    async fn start(keys: Vec<Arc<Key>>) -> Transmitter {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let t = Transmitter {
            addr,
            st: Arc::new(Mutex::new(TxState {
                keys,
                status: "enabled".into(),
                ..Default::default()
            })),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        let t2 = t.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let t = t2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let t = t.clone();
                        async move { Ok::<_, std::convert::Infallible>(t.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        t
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn st(&self) -> std::sync::MutexGuard<'_, TxState> {
        self.st.lock().unwrap()
    }

    fn enqueue(&self, jti: &str, set: String) {
        self.st().queue.push_back((jti.into(), set));
        self.wake.notify_waiters();
    }

    async fn serve(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let authed = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {MGMT}").as_bytes());
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let ok = |v: Value| {
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(v.to_string())))
                .unwrap()
        };
        let me = self.issuer();
        match path.as_str() {
            "/.well-known/ssf-configuration" => ok(json!({
                "spec_version": "1_0",
                "issuer": me,
                "jwks_uri": format!("{me}/jwks"),
                "delivery_methods_supported": ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"],
                "configuration_endpoint": format!("{me}/streams"),
                "status_endpoint": format!("{me}/status"),
                "verification_endpoint": format!("{me}/verify"),
            })),
            "/jwks" => {
                let mut st = self.st();
                st.jwks_fetches += 1;
                ok(json!({"keys": st.keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}))
            }
            _ if !authed => {
                self.st().bad_auth += 1;
                Response::builder()
                    .status(401)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
            "/streams" => {
                assert_eq!(query, format!("stream_id={STREAM}"));
                ok(json!({
                    "stream_id": STREAM, "iss": me, "aud": AUDIENCE,
                    "delivery": {"method": "urn:ietf:rfc:8936", "endpoint_url": format!("{me}/poll")},
                    "events_delivered": [format!("{CAEP}session-revoked"), format!("{RISC}account-disabled")],
                }))
            }
            "/status" => ok(json!({"stream_id": STREAM, "status": self.st().status})),
            "/verify" => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["stream_id"], STREAM);
                let state = v["state"].as_str().unwrap().to_string();
                self.st().verify_states.push(state);
                Response::builder()
                    .status(204)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
            "/poll" => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                {
                    let mut st = self.st();
                    st.polls += 1;
                    if let Some(acks) = v["ack"].as_array() {
                        for a in acks {
                            let a = a.as_str().unwrap().to_string();
                            st.queue.retain(|(j, _)| *j != a);
                            st.acks.push(a);
                        }
                    }
                    if let Some(errs) = v["setErrs"].as_object() {
                        for (j, e) in errs {
                            st.queue.retain(|(q, _)| q != j);
                            st.set_errs.push((j.clone(), e.clone()));
                        }
                    }
                }
                let max = v["maxEvents"].as_u64().unwrap_or(10) as usize;
                let immediate = v["returnImmediately"].as_bool().unwrap_or(false);
                let deadline = Instant::now() + Duration::from_millis(1500);
                loop {
                    let notified = self.wake.notified();
                    let sets: serde_json::Map<String, Value> = self
                        .st()
                        .queue
                        .iter()
                        .take(max)
                        .map(|(j, s)| (j.clone(), Value::String(s.clone())))
                        .collect();
                    if !sets.is_empty() || immediate || Instant::now() >= deadline {
                        let more = self.st().queue.len() > sets.len();
                        return ok(json!({"sets": sets, "moreAvailable": more}));
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
                }
            }
            _ => Response::builder()
                .status(404)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        }
    }
}

// ---------------------------------------------------------------- SETs

fn now() -> u64 {
    scopegate::clock::unix_now()
}

fn jti() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "set-{}-{}-{}",
        std::process::id(),
        scopegate::clock::unix_now_ms(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// The claims of a SET from `t` with one event about `subject`.
fn claims(t: &Transmitter, jti: &str, event: &str, subject: Value) -> Value {
    json!({
        "jti": jti,
        "iss": t.issuer(),
        "aud": AUDIENCE,
        "iat": now(),
        "sub_id": subject,
        "events": {event: {"event_timestamp": now()}},
    })
}

fn email(e: &str) -> Value {
    json!({"format": "email", "email": e})
}

/// The `[ssf]` section for a transmitter, with push and/or poll.
fn ssf_section(t: &Transmitter, push: bool, poll: bool) -> String {
    let mut s = format!(
        "[ssf]\ntransmitter = \"{}\"\naudience = \"{AUDIENCE}\"\nstream_id = \"{STREAM}\"\nbearer = \"{MGMT}\"\niat_skew = \"60s\"\njwks_min_refresh = \"30s\"\nstatus_interval = \"200ms\"\ntimeout = \"2s\"\n",
        t.issuer()
    );
    if push {
        s.push_str(&format!(
            "\n[ssf.push]\npath = \"/ssf/events\"\nauthorization = \"{PUSH_AUTH}\"\n"
        ));
    }
    if poll {
        s.push_str("\n[ssf.poll]\nmax_events = 10\nwait = \"5s\"\ninterval = \"100ms\"\n");
    }
    s
}

/// Pushes a SET as a transmitter does (RFC 8935).
async fn push(addr: SocketAddr, set: &str, auth: Option<&str>) -> Resp {
    let mut b = Request::post(format!("http://{addr}/ssf/events"))
        .header("content-type", "application/secevent+jwt")
        .header("accept", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    send(
        &client(),
        b.body(Full::new(Bytes::from(set.to_string()))).unwrap(),
    )
    .await
}

async fn metrics_of(admin: SocketAddr) -> String {
    let req = Request::get(format!("http://{admin}/metrics"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    String::from_utf8(send(&client(), req).await.body.to_vec()).unwrap()
}

/// Waits (polling, bounded) until `f` holds for the admin's metrics.
async fn until_metric(admin: SocketAddr, what: &str, f: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        let m = metrics_of(admin).await;
        if f(&m) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn keys_loaded(admin: SocketAddr) {
    until_metric(admin, "the transmitter's keys", |m| {
        metric(m, "scopegate_ssf_jwks_refreshes_total{outcome=\"ok\"}") >= 1.0
    })
    .await;
}

/// Polls until `token` is refused at `addr`; returns how long it took.
async fn until_refused(addr: SocketAddr, token: &str, start: Instant) -> Duration {
    let c = client();
    loop {
        let req = Request::get(format!("http://{addr}/2.0/folders/0"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let s = send(&c, req).await.status;
        if s == 401 {
            return start.elapsed();
        }
        assert_eq!(s, 200);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "token still accepted after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn status_of(addr: SocketAddr, token: &str) -> u16 {
    let req = Request::get(format!("http://{addr}/2.0/folders/0"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&client(), req).await.status
}

const APPLIED: &str = "scopegate_revocations_applied_total{kind=\"subject\",source=\"ssf\"}";

// ---------------------------------------------------------------- tests

/// One gateway with push: every kind of bad SET is refused with its RFC
/// 8935 error code and changes nothing; the metrics say why.
#[tokio::test]
async fn bad_sets_are_refused_with_the_rfc_error_and_change_nothing() {
    let good = Arc::new(Key::ec("ec-1"));
    let t = Transmitter::start(vec![good.clone()]).await;
    let h = Harness::start_with(Opts {
        extra: ssf_section(&t, true, false),
        ..Default::default()
    })
    .await;
    let m = h.metrics().await;
    // Exported at zero from start-up.
    for line in [
        "scopegate_ssf_verification_failures_total{reason=\"signature\"} 0",
        "scopegate_ssf_events_total{outcome=\"applied\",type=\"session-revoked\"} 0",
        "scopegate_ssf_poll_errors_total{kind=\"unreachable\"} 0",
        "scopegate_ssf_jwks_refreshes_total{outcome=\"rate_limited\"} 0",
    ] {
        assert!(m.contains(line), "{line} missing from\n{m}");
    }
    keys_loaded(h.admin).await;
    let token = h.mint("item_read", None).await;
    let forger = Key::ec("ec-1"); // same kid, another key
    let rsa_forger = Key::rsa("ec-1");
    let ok = |j: &str| claims(&t, j, &format!("{CAEP}session-revoked"), email(LOGIN));
    let with = |k: &str, v: Value| {
        let mut c = ok(&jti());
        c[k] = v;
        c
    };
    let unsigned = {
        let c = ok(&jti());
        let h = b64(json!({"alg": "none", "typ": "secevent+jwt"})
            .to_string()
            .as_bytes());
        format!("{h}.{}.", b64(c.to_string().as_bytes()))
    };
    let two_parts = {
        let s = good.sign(&ok(&jti()));
        s.rsplit_once('.').unwrap().0.to_string()
    };
    let hs256 = {
        let c = ok(&jti());
        let hd = b64(
            json!({"alg": "HS256", "kid": "ec-1", "typ": "secevent+jwt"})
                .to_string()
                .as_bytes(),
        );
        format!("{hd}.{}.c2lnbmF0dXJl", b64(c.to_string().as_bytes()))
    };
    let replayed = good.sign(&ok(&jti()));
    let cases: Vec<(&str, String, Option<&str>, &str, &str)> = vec![
        (
            "forged (ES256)",
            forger.sign(&ok(&jti())),
            Some(PUSH_AUTH),
            "invalid_key",
            "signature",
        ),
        (
            "forged (RS256 under an EC kid)",
            rsa_forger.sign(&ok(&jti())),
            Some(PUSH_AUTH),
            "invalid_key",
            "algorithm",
        ),
        (
            "expired (iat an hour ago)",
            good.sign(&with("iat", json!(now() - 3600))),
            Some(PUSH_AUTH),
            "invalid_request",
            "iat",
        ),
        (
            "from the future",
            good.sign(&with("iat", json!(now() + 3600))),
            Some(PUSH_AUTH),
            "invalid_request",
            "iat",
        ),
        (
            "expired (exp in the past)",
            good.sign(&with("exp", json!(now() - 10))),
            Some(PUSH_AUTH),
            "invalid_request",
            "expired",
        ),
        (
            "wrong audience",
            good.sign(&with("aud", json!("https://someone-else"))),
            Some(PUSH_AUTH),
            "invalid_audience",
            "audience",
        ),
        (
            "wrong issuer",
            good.sign(&with("iss", json!("https://evil.example"))),
            Some(PUSH_AUTH),
            "invalid_issuer",
            "issuer",
        ),
        (
            "alg=none",
            unsigned,
            Some(PUSH_AUTH),
            "invalid_request",
            "unsigned",
        ),
        (
            "unsigned (no signature part)",
            two_parts,
            Some(PUSH_AUTH),
            "invalid_request",
            "unsigned",
        ),
        ("HS256", hs256, Some(PUSH_AUTH), "invalid_key", "algorithm"),
        (
            "an ID token, not a SET",
            good.sign_with(&ok(&jti()), json!({"typ": "JWT"})),
            Some(PUSH_AUTH),
            "invalid_request",
            "malformed",
        ),
        (
            "no events",
            good.sign(&with("events", json!({}))),
            Some(PUSH_AUTH),
            "invalid_request",
            "malformed",
        ),
        (
            "no credentials",
            good.sign(&ok(&jti())),
            None,
            "authentication_failed",
            "authentication",
        ),
        (
            "wrong credentials",
            good.sign(&ok(&jti())),
            Some("Bearer not-the-push-secret"),
            "access_denied",
            "access",
        ),
    ];
    for (what, set, auth, err, reason) in &cases {
        let before = metric(
            &h.metrics().await,
            &format!("scopegate_ssf_verification_failures_total{{reason=\"{reason}\"}}"),
        );
        let r = push(h.addr, set, *auth).await;
        assert_eq!(
            r.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["err"], *err, "{what}");
        assert!(r.json()["description"].is_string(), "{what}");
        let after = metric(
            &h.metrics().await,
            &format!("scopegate_ssf_verification_failures_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(after, before + 1.0, "{what}: counted as {reason}");
        assert_eq!(
            h.get("/2.0/folders/0", &token).await.status,
            200,
            "{what} changed nothing"
        );
    }
    let m = h.metrics().await;
    assert_eq!(metric(&m, APPLIED), 0.0);
    assert_eq!(metric(&m, "scopegate_revocation_entries"), 0.0);

    // An unmappable subject: accepted (202), counted, nothing revoked.
    let phone = claims(
        &t,
        &jti(),
        &format!("{RISC}account-disabled"),
        json!({"format": "phone_number", "phone_number": "+12065550100"}),
    );
    assert_eq!(
        push(h.addr, &good.sign(&phone), Some(PUSH_AUTH))
            .await
            .status,
        202
    );
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "scopegate_ssf_events_total{outcome=\"unmapped\",type=\"account-disabled\"}"
        ),
        1.0
    );
    assert_eq!(metric(&m, APPLIED), 0.0);
    // An event that does not reduce access: counted, not acted on.
    let claims_change = claims(
        &t,
        &jti(),
        &format!("{CAEP}token-claims-change"),
        email(LOGIN),
    );
    assert_eq!(
        push(h.addr, &good.sign(&claims_change), Some(PUSH_AUTH))
            .await
            .status,
        202
    );
    assert_eq!(
        metric(
            &h.metrics().await,
            "scopegate_ssf_events_total{outcome=\"counted\",type=\"token-claims-change\"}"
        ),
        1.0
    );
    assert_eq!(h.get("/2.0/folders/0", &token).await.status, 200);

    // The replayed SET: accepted once (and it revokes), refused the second time.
    assert_eq!(push(h.addr, &replayed, Some(PUSH_AUTH)).await.status, 202);
    assert_eq!(h.get("/2.0/folders/0", &token).await.status, 401);
    let r = push(h.addr, &replayed, Some(PUSH_AUTH)).await;
    assert_eq!(
        (r.status, r.json()["err"].as_str()),
        (400, Some("invalid_request"))
    );
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "scopegate_ssf_verification_failures_total{reason=\"replay\"}"
        ),
        1.0
    );
    assert_eq!(metric(&m, APPLIED), 1.0, "the replay applied nothing");
    h.stop().await;
}

/// Key rotation: a SET under a new `kid` causes one JWKS fetch and is
/// accepted; another unknown `kid` right after is not fetched again.
#[tokio::test]
async fn key_rotation_refreshes_the_jwks_once_rate_limited() {
    let old = Arc::new(Key::rsa("rsa-1"));
    let t = Transmitter::start(vec![old.clone()]).await;
    let h = Harness::start_with(Opts {
        extra: ssf_section(&t, true, false),
        ..Default::default()
    })
    .await;
    keys_loaded(h.admin).await;
    let token = h.mint("item_read", None).await;
    // RS256 works as is.
    let c = claims(
        &t,
        &jti(),
        &format!("{CAEP}token-claims-change"),
        email(LOGIN),
    );
    assert_eq!(
        push(h.addr, &old.sign(&c), Some(PUSH_AUTH)).await.status,
        202
    );

    let fetches = t.st().jwks_fetches;
    let new = Arc::new(Key::ec("ec-2"));
    t.st().keys = vec![new.clone()];
    let c = claims(
        &t,
        &jti(),
        &format!("{RISC}credential-compromise"),
        json!({"format": "iss_sub", "iss": t.issuer(), "sub": USER}),
    );
    let r = push(h.addr, &new.sign(&c), Some(PUSH_AUTH)).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        t.st().jwks_fetches,
        fetches + 1,
        "one fetch for the new kid"
    );
    assert_eq!(h.get("/2.0/folders/0", &token).await.status, 401);

    let stranger = Key::ec("ec-3");
    let c = claims(&t, &jti(), &format!("{CAEP}session-revoked"), email(LOGIN));
    let r = push(h.addr, &stranger.sign(&c), Some(PUSH_AUTH)).await;
    assert_eq!(
        (r.status, r.json()["err"].as_str()),
        (400, Some("invalid_key"))
    );
    assert_eq!(
        t.st().jwks_fetches,
        fetches + 1,
        "rate-limited: no second fetch"
    );
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "scopegate_ssf_jwks_refreshes_total{outcome=\"rate_limited\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "scopegate_ssf_jwks_refreshes_total{outcome=\"ok\"}"),
        2.0
    );
    // The old key is gone from the transmitter's set, so from ours too.
    let c = claims(&t, &jti(), &format!("{CAEP}session-revoked"), email(LOGIN));
    assert_eq!(
        push(h.addr, &old.sign(&c), Some(PUSH_AUTH)).await.json()["err"],
        "invalid_key"
    );
    h.stop().await;
}

/// Verification and stream status: the receiver asks for a verification
/// event at start, recognises the state it sent, and follows the status.
#[tokio::test]
async fn verification_is_answered_and_stream_status_followed() {
    let key = Arc::new(Key::ec("ec-1"));
    let t = Transmitter::start(vec![key.clone()]).await;
    let h = Harness::start_with(Opts {
        extra: ssf_section(&t, true, false),
        ..Default::default()
    })
    .await;
    until_metric(h.admin, "status enabled", |m| {
        metric(m, "scopegate_ssf_stream_status{status=\"enabled\"}") == 1.0
    })
    .await;
    let state = {
        let start = Instant::now();
        loop {
            if let Some(s) = t.st().verify_states.first().cloned() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no verification request"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let verification = |state: &str| {
        json!({"jti": jti(), "iss": t.issuer(), "aud": AUDIENCE, "iat": now(),
               "sub_id": {"format": "opaque", "id": STREAM},
               "events": {format!("{SSF}verification"): {"state": state}}})
    };
    assert_eq!(
        push(h.addr, &key.sign(&verification(&state)), Some(PUSH_AUTH))
            .await
            .status,
        202
    );
    assert_eq!(
        push(
            h.addr,
            &key.sign(&verification("not-ours")),
            Some(PUSH_AUTH)
        )
        .await
        .status,
        202
    );
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "scopegate_ssf_events_total{outcome=\"verified\",type=\"verification\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "scopegate_ssf_events_total{outcome=\"unsolicited\",type=\"verification\"}"
        ),
        1.0
    );

    t.st().status = "paused".into();
    until_metric(h.admin, "status paused", |m| {
        metric(m, "scopegate_ssf_stream_status{status=\"paused\"}") == 1.0
            && metric(m, "scopegate_ssf_stream_status{status=\"enabled\"}") == 0.0
    })
    .await;
    // A stream-updated event from the transmitter is honoured too.
    let updated = json!({"jti": jti(), "iss": t.issuer(), "aud": AUDIENCE, "iat": now(),
        "sub_id": {"format": "opaque", "id": STREAM},
        "events": {format!("{SSF}stream-updated"): {"status": "disabled"}}});
    t.st().status = "disabled".into();
    assert_eq!(
        push(h.addr, &key.sign(&updated), Some(PUSH_AUTH))
            .await
            .status,
        202
    );
    let m = h.metrics().await;
    assert_eq!(
        metric(&m, "scopegate_ssf_stream_status{status=\"disabled\"}"),
        1.0
    );
    assert_eq!(t.st().bad_auth, 0, "the management credential was sent");
    h.stop().await;
}

/// Two replicas (processes) in fleet mode, sharing a Redis stream.
async fn fleet(
    t: &Transmitter,
    push: bool,
    poll: bool,
) -> Option<(Proc, Proc, String, String, tokio::sync::oneshot::Sender<()>)> {
    let url = redis_url()?;
    let key = stream_key("ssf");
    // A new fleet's stream is declared complete once (`scopegate fleet-init`).
    scopegate::revocation::epoch::init_fleet(&url, &key)
        .await
        .expect("fleet-init");
    let (_api, addr, stop) = start_api().await;
    let keyring = scopegate::token::Keyring::generate_toml("ssf");
    let mut procs = Vec::new();
    for _ in 0..2 {
        let dir = temp_dir("ssf");
        let opts = Opts {
            keyring: Some(keyring.clone()),
            revocation: Some(fleet_section(&url, &key, "reject")),
            extra: ssf_section(t, push, poll),
            ..Default::default()
        };
        let cfg = write_config(&dir, addr, &opts);
        procs.push(spawn_gateway(&cfg).await);
    }
    let b = procs.pop().unwrap();
    let a = procs.pop().unwrap();
    wait_ready(a.admin).await;
    wait_ready(b.admin).await;
    keys_loaded(a.admin).await;
    keys_loaded(b.admin).await;
    Some((a, b, url, key, stop))
}

/// SSF events of `kind` applied, summed over both replicas (each event is
/// applied by the replica that received it; the other learns it from the stream).
async fn fleet_applied(a: &Proc, b: &Proc, kind: &str) -> f64 {
    let name = format!("scopegate_ssf_events_total{{outcome=\"applied\",type=\"{kind}\"}}");
    metric(&metrics_of(a.admin).await, &name) + metric(&metrics_of(b.admin).await, &name)
}

async fn stream_len(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

async fn drop_keys(url: &str, key: &str) {
    let client = redis::Client::open(url).unwrap();
    if let Ok(mut c) = client.get_multiplexed_async_connection().await {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{key}*"))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        for k in keys {
            let _: Result<i64, _> = redis::cmd("DEL").arg(k).query_async(&mut c).await;
        }
    }
}

/// Push to one replica: the user's tokens are refused on both; the same SET
/// replayed to the other replica is refused there (applied once).
#[tokio::test]
async fn push_revokes_the_users_tokens_on_every_replica() {
    let key = Arc::new(Key::rsa("rsa-1"));
    let t = Transmitter::start(vec![key.clone()]).await;
    let Some((a, b, url, skey, stop)) = fleet(&t, true, false).await else {
        return;
    };
    let token = a.mint("item_read", None).await;
    assert_eq!(status_of(b.addr, &token).await, 200);

    // "The admin disables the user at the IdP": the transmitter signs and pushes.
    let start = Instant::now();
    let c = claims(&t, &jti(), &format!("{RISC}account-disabled"), email(LOGIN));
    let set = key.sign(&c);
    let r = push(a.addr, &set, Some(PUSH_AUTH)).await;
    let accepted = start.elapsed();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    // The 202 means durable: the pushed-to replica refuses at once.
    assert_eq!(status_of(a.addr, &token).await, 401);
    let other = until_refused(b.addr, &token, start).await;
    eprintln!(
        "SSF push: 202 after {accepted:?}; refused on the other replica {other:?} after the push began"
    );

    let r = push(b.addr, &set, Some(PUSH_AUTH)).await;
    assert_eq!(
        (r.status, r.json()["err"].as_str()),
        (400, Some("invalid_request")),
        "replay across the fleet"
    );
    assert_eq!(
        fleet_applied(&a, &b, "account-disabled").await,
        1.0,
        "applied once across the fleet"
    );
    assert_eq!(
        stream_len(&url, &skey).await,
        1,
        "one revocation on the stream"
    );
    let _ = stop.send(());
    drop_keys(&url, &skey).await;
}

/// Poll: both replicas poll; the SET is applied once, acknowledged, and the
/// user's tokens are refused on both. A refused SET is reported back in the
/// next poll with its error code.
#[tokio::test]
async fn poll_revokes_on_every_replica_and_reports_errors_back() {
    let key = Arc::new(Key::ec("ec-1"));
    let t = Transmitter::start(vec![key.clone()]).await;
    let Some((a, b, url, skey, stop)) = fleet(&t, false, true).await else {
        return;
    };
    let token = b.mint("item_read", None).await;
    assert_eq!(status_of(a.addr, &token).await, 200);
    // Both replicas are polling.
    let start = Instant::now();
    while t.st().polls < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "replicas are not polling"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let start = Instant::now();
    let id = jti();
    let c = claims(
        &t,
        &id,
        &format!("{CAEP}session-revoked"),
        json!({"format": "iss_sub", "iss": t.issuer(), "sub": USER}),
    );
    t.enqueue(&id, key.sign(&c));
    let on_a = until_refused(a.addr, &token, start).await;
    let on_b = until_refused(b.addr, &token, start).await;
    eprintln!("SSF poll: refused on the replicas {on_a:?} / {on_b:?} after the SET was queued");
    // Acknowledged in a following poll.
    while !t.st().acks.contains(&id) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        fleet_applied(&a, &b, "session-revoked").await,
        1.0,
        "applied once across the fleet"
    );

    // A forged SET: reported in setErrs, never acknowledged, nothing applied.
    let forged_id = jti();
    let c = claims(
        &t,
        &forged_id,
        &format!("{CAEP}session-revoked"),
        email("someone@example.com"),
    );
    t.enqueue(&forged_id, Key::ec("ec-1").sign(&c));
    let start = Instant::now();
    let err = loop {
        if let Some((_, e)) = t.st().set_errs.iter().find(|(j, _)| *j == forged_id) {
            break e.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "error never reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(err["err"], "invalid_key");
    assert!(!t.st().acks.contains(&forged_id));
    assert_eq!(fleet_applied(&a, &b, "session-revoked").await, 1.0);
    assert_eq!(
        stream_len(&url, &skey).await,
        1,
        "one revocation on the stream"
    );
    let _ = stop.send(());
    drop_keys(&url, &skey).await;
}
