//! Microbenchmarks of the per-request work (issue #7), with criterion.
//!
//! `cargo bench --bench hot_path` (or `-- <filter>`). Figures and targets
//! are in README.md, "Benchmarks".
//!
//! What each group measures:
//! - `decision/cached`: the decision on a grant-cache hit, composed from the
//!   library's public calls in the order `enforce::decide` runs them:
//!   canonical target, route match, bearer-token digest + grant-cache hit,
//!   revocation check (against a set holding 1,000 entries, through the
//!   grant's mark as `enforce` does: no lookup while nothing was revoked
//!   since the grant's last check), scope check and
//!   the object check for a file-restricted token (building the `Item` as
//!   `enforce` does). Not included: hyper parsing, headers, the request id,
//!   metrics and the log line (those are in the load benchmark).
//! - `route_match/{10,100,1000}`: `Policy::find` on generated policies, and
//!   on the shipped Box policy.
//! - `token/seal` and `token/verify_miss`: minting, and what a cache miss
//!   costs (digest + AES-GCM open + JSON claims + `Grant::from_claims`).
//! - `answer/folder_items_100`: rewriting a 100-entry folder listing
//!   (~90 KB, Box's shape: shared link, download URL, representations in
//!   every entry) for a token that may not see shared links or downloads,
//!   with every URL mapped to the gateway (`answer::rewrite_json`); next to
//!   it `serde_value_roundtrip`, a parse into `serde_json::Value` and back,
//!   for scale; and `file_info_small`, the load benchmark's ~250-byte
//!   file info answer.
//! - `revocation/1M`: `RevocationState::is_revoked` with 1,000,000 token
//!   entries, for a revoked and a not-revoked token; and the check a cached
//!   grant makes (`is_revoked_checked`) when nothing changed since its last.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Method;
use scopegate::clock::unix_now;
use scopegate::config::ExternalTokens;
use scopegate::digest::Digest;
use scopegate::grant::{Grant, Grants, Item};
use scopegate::policy::ItemKind;
use scopegate::revocation::{Checked, Event, RevocationState, Source, Target as RevTarget};
use scopegate::target::Target;

mod common;
use common::*;

fn token_event(d: Digest, now: u64) -> Event {
    Event {
        target: RevTarget::Token(d),
        revoked_at_ms: now * 1000,
        keep_until: now + 3600,
        source: Source::Api,
    }
}

fn digest_of_index(i: u64) -> Digest {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b[8..].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
    Digest::of(&b)
}

fn decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let policy = box_policy();
    let keyring = Arc::new(keyring());
    let now = unix_now();
    let grants = Grants::new(keyring.clone(), ExternalTokens::Reject, None, 1_000_000);
    let revocations = RevocationState::new();
    for i in 0..1000 {
        revocations.apply(&token_event(digest_of_index(i), now));
    }
    // 1000 distinct tokens, all cached, each restricted to its own file.
    let tokens: Vec<(String, String)> = (0..1000u64)
        .map(|i| {
            (
                keyring.seal(&claims(i, now)).unwrap(),
                format!("/2.0/files/{}/content", 100_000 + i),
            )
        })
        .collect();
    rt.block_on(async {
        for (t, _) in &tokens {
            let (_, hit) = grants.resolve(t, &policy.scopes, now).await.unwrap();
            assert!(!hit);
        }
    });

    let mut g = c.benchmark_group("decision");
    g.bench_function("cached", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for n in 0..iters {
                    let (token, path) = &tokens[(n % 1000) as usize];
                    let target = Target::parse_parts(black_box(path), None).unwrap();
                    let m = policy.find(&Method::GET, target.path()).unwrap();
                    let (grant, hit) = grants
                        .resolve(black_box(token), &policy.scopes, now)
                        .await
                        .unwrap();
                    debug_assert!(hit);
                    assert!(!revocations.is_revoked_checked(
                        grant.checked(),
                        grant.token_hash(),
                        grant.family(),
                        grant.subject(),
                        grant.iat()
                    ));
                    assert!(grant.scopes().intersects(m.route.scopes));
                    let named = Item {
                        kind: ItemKind::File,
                        id: m.param(0).unwrap().into(),
                    };
                    assert!(grant.restricted_to() == Some(&named));
                    black_box((&target, hit));
                }
                start.elapsed()
            })
        })
    });
    // The parts, to see where the time goes.
    g.bench_function("parts/target_parse", |b| {
        let path = "/2.0/files/100042/content";
        b.iter(|| Target::parse_parts(black_box(path), None).unwrap())
    });
    // A query as Box UI Elements send it: plain ASCII, already canonical.
    g.bench_function("parts/target_parse_query", |b| {
        let path = "/2.0/folders/100/items";
        let q = "fields=id,name,size,modified_at,permissions,item_collection&limit=100&offset=0";
        b.iter(|| Target::parse_parts(black_box(path), Some(black_box(q))).unwrap())
    });
    // The HTTP/1 head reader that runs beside hyper (src/framing.rs): one
    // typical request head read and its verdict taken, per iteration.
    g.bench_function("parts/target_framing_head", |b| {
        let token = &tokens[0].0;
        let head = format!(
            "GET /2.0/files/100042/content HTTP/1.1\r\nHost: gateway.example.com\r\nUser-Agent: box-sdk-gen/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nAuthorization: Bearer {token}\r\nX-Box-UA: agent=box-sdk-gen/1.0\r\n\r\n"
        );
        let uri: http::Uri = "/2.0/files/100042/content".parse().unwrap();
        let heads = Arc::new(scopegate::framing::Heads::default());
        let mut reader = scopegate::framing::Reader::new(65536, 100, heads.clone());
        b.iter(|| {
            reader.feed(black_box(head.as_bytes()));
            black_box(heads.take(&Method::GET, &uri, 6))
        })
    });
    // A query that is read and re-encoded (`+`, escapes).
    g.bench_function("parts/target_parse_query_rewrite", |b| {
        let path = "/2.0/search";
        let q = "query=annual+report%202026&ancestor_folder_ids=100&fields=id%2Cname&limit=20";
        b.iter(|| Target::parse_parts(black_box(path), Some(black_box(q))).unwrap())
    });
    g.bench_function("parts/grant_cache_hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for n in 0..iters {
                    let (token, _) = &tokens[(n % 1000) as usize];
                    black_box(
                        grants
                            .resolve(black_box(token), &policy.scopes, now)
                            .await
                            .unwrap(),
                    );
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("parts/token_digest", |b| {
        let t = &tokens[0].0;
        b.iter(|| Digest::of(black_box(t.as_bytes())))
    });
    g.finish();
}

fn route_match(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_match");
    for n in [10usize, 100, 1000] {
        let policy = generated_policy(n);
        // Paths hitting routes spread over the table, and one that misses.
        let paths: Vec<String> = (0..64)
            .map(|k| {
                let i = (k * 7919) % (n * 4 / 5).max(1);
                if i % 4 == 0 && k % 2 == 0 {
                    format!("/2.0/r{i}/12345/content")
                } else {
                    format!("/2.0/r{i}/12345")
                }
            })
            .collect();
        for p in &paths {
            assert!(policy.find(&Method::GET, p).is_some(), "{p}");
        }
        g.bench_with_input(BenchmarkId::new("hit", n), &paths, |b, paths| {
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) & 63;
                black_box(
                    policy
                        .find(&Method::GET, black_box(&paths[k]))
                        .map(|m| m.route.scopes),
                )
            })
        });
    }
    let policy = box_policy();
    g.bench_function("box_policy/file_content", |b| {
        b.iter(|| {
            black_box(
                policy
                    .find(&Method::GET, black_box("/2.0/files/123456/content"))
                    .map(|m| m.route.scopes),
            )
        })
    });
    g.finish();
}

fn token(c: &mut Criterion) {
    let keyring = keyring();
    let policy = box_policy();
    let now = unix_now();
    let cl = claims(7, now);
    let mut g = c.benchmark_group("token");
    g.bench_function("seal", |b| b.iter(|| keyring.seal(black_box(&cl)).unwrap()));
    let t = keyring.seal(&cl).unwrap();
    println!("minted token length: {} bytes", t.len());
    // What a grant-cache miss does for a minted token, before the insert.
    g.bench_function("verify_miss", |b| {
        b.iter(|| {
            let hash = Digest::of(black_box(t.as_bytes()));
            let claims = keyring.open(black_box(&t)).unwrap();
            Grant::from_claims(claims, hash, &policy.scopes).unwrap()
        })
    });
    // The same through Grants::resolve with a cold cache entry each time
    // (adds the moka insert; capacity large enough that nothing is evicted).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tokens: Vec<String> = (0..200_000u64)
        .map(|i| keyring.seal(&claims(i, now)).unwrap())
        .collect();
    let grants = Grants::new(Arc::new(keyring), ExternalTokens::Reject, None, 1_000_000);
    let mut next = 0usize;
    g.bench_function("resolve_miss_with_insert", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if next == tokens.len() {
                        // Start over with an empty cache (not timed).
                        grants.forget_all();
                        next = 0;
                    }
                    let t = &tokens[next];
                    next += 1;
                    let start = Instant::now();
                    let (_, hit) = grants.resolve(t, &policy.scopes, now).await.unwrap();
                    total += start.elapsed();
                    debug_assert!(!hit);
                }
                total
            })
        })
    });
    g.finish();
}

fn revocation(c: &mut Criterion) {
    let now = unix_now();
    let state = RevocationState::new();
    const N: u64 = 1_000_000;
    for i in 0..N {
        state.apply(&token_event(digest_of_index(i), now));
    }
    assert_eq!(state.len(), N as usize);
    let fam = Digest::of(PARENT.as_bytes());
    let present: Vec<Digest> = (0..1024).map(|k| digest_of_index(k * 977)).collect();
    let absent: Vec<Digest> = (0..1024).map(|k| digest_of_index(N + k)).collect();
    let mut g = c.benchmark_group("revocation_1M");
    g.bench_function("is_revoked/present", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) & 1023;
            assert!(state.is_revoked(black_box(&present[k]), &fam, Some("11446498"), Some(now)))
        })
    });
    g.bench_function("is_revoked/absent", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) & 1023;
            assert!(!state.is_revoked(black_box(&absent[k]), &fam, Some("11446498"), Some(now)))
        })
    });
    // 1024 cached grants' marks, each checked once already.
    let marks: Vec<Checked> = (0..1024).map(|_| Checked::new()).collect();
    for (m, d) in marks.iter().zip(&absent) {
        assert!(!state.is_revoked_checked(m, d, &fam, Some("11446498"), Some(now)));
    }
    g.bench_function("is_revoked_checked/unchanged", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) & 1023;
            assert!(!state.is_revoked_checked(
                black_box(&marks[k]),
                &absent[k],
                &fam,
                Some("11446498"),
                Some(now)
            ))
        })
    });
    g.finish();
}

/// A folder listing as Box sends it to Explorer: `n` entries with the
/// fields Explorer asks for.
fn folder_listing(n: usize) -> Vec<u8> {
    let entries: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let id = 100_000 + i;
            serde_json::json!({
                "type": "file", "id": id.to_string(), "etag": "3", "sequence_id": "3",
                "name": format!("report-{i}.pdf"), "size": 123_456 + i, "extension": "pdf",
                "created_at": "2026-01-02T03:04:05-08:00", "modified_at": "2026-01-02T03:04:05-08:00",
                "description": "", "is_download_available": true,
                "permissions": {"can_download": true, "can_preview": true, "can_upload": true,
                    "can_comment": true, "can_rename": true, "can_delete": true, "can_share": true,
                    "can_set_share_access": true, "can_invite_collaborator": true, "can_annotate": true},
                "path_collection": {"total_count": 2, "entries": [
                    {"type": "folder", "id": "0", "name": "All Files"},
                    {"type": "folder", "id": "100", "name": "Projects"}]},
                "modified_by": {"type": "user", "id": "11446498", "name": "Aaron Levie", "login": "ceo@example.com"},
                "shared_link": {"url": format!("https://app.box.com/s/{id}"), "download_url": format!("https://app.box.com/shared/static/{id}.pdf"),
                    "access": "open", "effective_access": "open", "is_password_enabled": false,
                    "permissions": {"can_download": true, "can_preview": true}},
                "authenticated_download_url": format!("https://public.boxcloud.com/api/2.0/files/{id}/content"),
                "representations": {"entries": [{
                    "representation": "jpg", "properties": {"dimensions": "320x320", "paged": "false", "thumb": "true"},
                    "info": {"url": format!("https://api.box.com/2.0/internal_files/{id}/versions/7/representations/jpg_thumb_320x320")},
                    "content": {"url_template": format!("https://dl.boxcloud.com/api/2.0/internal_files/{id}/versions/7/representations/jpg_thumb_320x320/content/{{+asset_path}}")},
                    "status": {"state": "success"}}]}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "total_count": n, "entries": entries, "offset": 0, "limit": 100,
        "order": [{"by": "type", "direction": "ASC"}]
    }))
    .unwrap()
}

fn answer(c: &mut Criterion) {
    use scopegate::answer::{Origins, Plan, rewrite_json};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy-box.toml");
    let policy = scopegate::policy::Policy::load(&path).unwrap();
    let upstream = scopegate::config::Upstream {
        api: "https://api.box.com".parse().unwrap(),
        upload: "https://upload.box.com".parse().unwrap(),
        download: "https://dl.boxcloud.com".parse().unwrap(),
        public_download: "https://public.boxcloud.com".parse().unwrap(),
        token_endpoint: None,
        revoke_endpoint: None,
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        ca_bundle: None,
        pool: Default::default(),
    };
    let held = policy.scopes.expand(
        policy
            .scopes
            .exact(["base_explorer", "item_preview"])
            .unwrap(),
    );
    let hidden = policy.hidden_fields(held);
    let plan = Plan::new(
        Arc::new(policy),
        hidden,
        Arc::new(Origins::new(&upstream)),
        8 << 20,
    );
    let listing = folder_listing(100);
    let out = rewrite_json(&plan, Some("https://gw.example.com"), &listing).unwrap();
    assert!(!out.windows(13).any(|w| w == b"\"shared_link\""));
    eprintln!(
        "folder listing: {} bytes in, {} bytes out",
        listing.len(),
        out.len()
    );
    let mut g = c.benchmark_group("answer");
    g.throughput(criterion::Throughput::Bytes(listing.len() as u64));
    g.bench_function("folder_items_100", |b| {
        b.iter(|| rewrite_json(&plan, Some("https://gw.example.com"), black_box(&listing)).unwrap())
    });
    g.bench_function("serde_value_roundtrip", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_slice(black_box(&listing)).unwrap();
            serde_json::to_vec(&v).unwrap()
        })
    });
    // The load benchmark's file info answer (~250 bytes), the common case.
    let file = br#"{"type":"file","id":"1001","name":"file-1001.pdf","etag":"1","sequence_id":"1","sha1":"85136c79cbf9fe36bb9d05d0639c70c265c18d37","file_version":{"type":"file_version","id":"91001","sha1":"85136c79cbf9fe36bb9d05d0639c70c265c18d37"}}"#;
    g.throughput(criterion::Throughput::Bytes(file.len() as u64));
    g.bench_function("file_info_small", |b| {
        b.iter(|| {
            rewrite_json(&plan, Some("https://gw.example.com"), black_box(&file[..])).unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(50);
    targets = decision, route_match, token, revocation, answer
}
criterion_main!(benches);
