//! Memory per cached grant and per revocation entry at 1,000,000 entries
//! (issue #7). Not a timing benchmark: it prints figures.
//!
//! `cargo bench --bench memory`
//!
//! Two measures for each structure:
//! - live heap bytes, from a counting global allocator (exact: what the
//!   structure holds, including the hash tables' and cache's slack);
//! - resident set growth, from /proc/self/statm (what the OS sees,
//!   including allocator fragmentation and freed-but-retained pages).
//!
//! The tokens are minted and dropped one at a time, so only what the cache
//! keeps is counted.

use std::alloc::{GlobalAlloc, Layout};

/// The allocator the binary uses (src/main.rs), so RSS is what a deployment sees.
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use scopegate::clock::unix_now;
use scopegate::config::ExternalTokens;
use scopegate::digest::Digest;
use scopegate::grant::Grants;
use scopegate::revocation::{Event, RevocationState, Source, Target};

mod common;
use common::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the counter
// only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { INNER.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { INNER.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { INNER.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { INNER.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_bytes() -> isize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: isize = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

const N: u64 = 1_000_000;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either way: run with a small N under test to stay quick.
    let n = if std::env::args().any(|a| a == "--bench") {
        N
    } else {
        10_000
    };
    let now = unix_now();

    // ---- revocation entries ----
    let (h0, r0) = (live(), rss_bytes());
    let state = RevocationState::new();
    for i in 0..n {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&i.to_le_bytes());
        state.apply(&Event {
            target: Target::Token(Digest::of(&b)),
            revoked_at_ms: now * 1000,
            keep_until: now + 3600,
            source: Source::Api,
        });
    }
    let (h1, r1) = (live(), rss_bytes());
    assert_eq!(state.len() as u64, n);
    println!(
        "revocation entries: {n}: heap {:.1} B/entry, RSS {:.1} B/entry (target <= 100)",
        (h1 - h0) as f64 / n as f64,
        (r1 - r0) as f64 / n as f64
    );
    drop(state);

    // ---- cached grants ----
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let keyring = Arc::new(keyring());
    let policy = box_policy();
    let grants = Grants::new(keyring.clone(), ExternalTokens::Reject, None, 2 * N);
    // Warm the cache's lazily built parts with one entry, then start counting.
    rt.block_on(grants.resolve(
        &keyring.seal(&claims(u64::MAX, now)).unwrap(),
        &policy.scopes,
        now,
    ))
    .unwrap();
    let (h0, r0) = (live(), rss_bytes());
    rt.block_on(async {
        for i in 0..n {
            let t = keyring.seal(&claims(i, now)).unwrap();
            let (_, hit) = grants.resolve(&t, &policy.scopes, now).await.unwrap();
            assert!(!hit);
        }
    });
    let (h1, r1) = (live(), rss_bytes());
    println!(
        "cached grants: {n} (cache reports {}): heap {:.1} B/grant, RSS {:.1} B/grant (target <= 300)",
        grants.cached_entries(),
        (h1 - h0) as f64 / n as f64,
        (r1 - r0) as f64 / n as f64
    );
    println!(
        "  of which the Grant itself (Arc + struct): {} B, plus its heap strings (file id, subject, `Bearer <parent>`)",
        std::mem::size_of::<scopegate::grant::Grant>() + 16
    );
}
