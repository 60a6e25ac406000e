//! Shared set-up for the microbenchmarks (included with `#[path]`/`mod`).
#![allow(dead_code)]

use std::fmt::Write;
use std::path::Path;

use scopegate::config::Problems;
use scopegate::digest::Digest;
use scopegate::policy::Policy;
use scopegate::token::{Claims, Keyring, Restriction};

/// The shipped Box policy (54 routes).
pub fn box_policy() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy-box.toml");
    Policy::load(&path).unwrap_or_else(|p| panic!("{p}"))
}

/// A policy with `n` distinct routes, shaped like Box's: `/2.0/r{i}/{id}`
/// plus, for every fourth, `/2.0/r{i}/{id}/content`, so the trie has both
/// wide literal levels and param edges.
pub fn generated_policy_text(n: usize) -> String {
    let mut t = String::new();
    let mut made = 0;
    let mut i = 0;
    while made < n {
        let _ = write!(
            t,
            "[[route]]\nname = \"r{i}.get\"\nmethod = \"GET\"\npath = \"/2.0/r{i}/{{id}}\"\nscopes = [\"item_read\"]\nobject = \"file:path.id\"\n\n"
        );
        made += 1;
        if made < n && i % 4 == 0 {
            let _ = write!(
                t,
                "[[route]]\nname = \"r{i}.content\"\nmethod = \"GET\"\npath = \"/2.0/r{i}/{{id}}/content\"\nscopes = [\"item_download\"]\nobject = \"file:path.id\"\n\n"
            );
            made += 1;
        }
        i += 1;
    }
    t
}

pub fn generated_policy(n: usize) -> Policy {
    let p = Policy::from_toml(&generated_policy_text(n), Problems::new(Path::new("bench")))
        .unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(p.routes().len(), n);
    p
}

/// A parent token the size of a Box access token (32 characters).
pub const PARENT: &str = "T9cE5asGnuyYCCqIZFoWjFHvNbvVqHjl";

/// Claims as `/oauth2/token` mints them: two scopes, one file, a subject.
pub fn claims(i: u64, now: u64) -> Claims {
    Claims {
        p: PARENT.to_string(),
        s: vec!["item_preview".into(), "item_download".into()],
        r: Some(Restriction {
            k: "file".into(),
            id: format!("{}", 100_000 + i),
        }),
        l: None,
        sub: Some("11446498".into()),
        lg: None,
        iat: now,
        exp: now + 3600,
        jti: format!("{:032x}", i),
        fam: Digest::of(PARENT.as_bytes()),
    }
}

pub fn keyring() -> Keyring {
    Keyring::generate("b")
}
