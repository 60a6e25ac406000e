//! Minted tokens: `Keyring::open` on arbitrary strings, and seal/open round
//! trips of claims built from the input, with every single-byte change of a
//! sealed token refused.
//!
//! Input: first byte selects the mode (even: the rest is a token to open;
//! odd: the rest is `arbitrary` data for claims, a repeat factor for the
//! parent token and a byte to change).
#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use scopegate::digest::Digest;
use scopegate::token::{Claims, Keyring, MAX_TOKEN_LEN, PREFIX, Restriction, TokenError};

static RING: LazyLock<Keyring> = LazyLock::new(|| Keyring::generate("f"));

#[derive(Arbitrary, Debug)]
struct Input {
    parent: String,
    /// The parent token repeated this many times (1..=64): exchange takes
    /// parents up to `MAX_TOKEN_LEN` bytes, far more than the input holds.
    repeat: u8,
    scopes: Vec<String>,
    restriction: Option<(bool, String)>,
    link: Option<String>,
    sub: Option<String>,
    iat: u64,
    exp: u64,
    jti: String,
    fam: [u8; 16],
    flip_at: usize,
    flip_to: u8,
}

fn claims(i: &Input) -> Claims {
    let mut p = i.parent.repeat(usize::from(i.repeat % 64) + 1);
    while p.len() > MAX_TOKEN_LEN {
        p.pop();
    }
    Claims {
        p,
        s: i.scopes.clone(),
        r: i.restriction.as_ref().map(|(file, id)| Restriction {
            k: if *file { "file" } else { "folder" }.into(),
            id: id.clone(),
        }),
        l: i.link.clone(),
        sub: i.sub.clone(),
        lg: None,
        iat: i.iat,
        exp: i.exp,
        jti: i.jti.clone(),
        fam: Digest(i.fam),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let s = String::from_utf8_lossy(rest);
        // Nobody without the key can make a token that opens.
        if let Ok(c) = RING.open(&s) {
            panic!("forged token opened: {c:?}");
        }
        return;
    }
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(rest)) else {
        return;
    };
    let c = claims(&input);
    let Ok(token) = RING.seal_checked(&c) else {
        // Too long to open (a parent of several KB): the exchange refuses to
        // mint it, and `open` must refuse it on length.
        let token = RING.seal(&c).expect("the OS random source works");
        assert!(token.len() > MAX_TOKEN_LEN);
        assert_eq!(RING.open(&token), Err(TokenError::Malformed));
        return;
    };
    assert!(token.starts_with(&format!("{PREFIX}f.")));
    assert!(token.is_ascii());
    // Whatever `seal_checked` mints opens to exactly the claims sealed.
    assert_eq!(
        RING.open(&token).as_ref(),
        Ok(&c),
        "sealed token of {} bytes did not open",
        token.len()
    );

    // One changed byte: never opens, not even to the same claims (a second
    // spelling of one token would dodge a revocation by token digest).
    let mut bytes = token.clone().into_bytes();
    let at = input.flip_at % bytes.len();
    if bytes[at] == input.flip_to {
        return;
    }
    bytes[at] = input.flip_to;
    if let Ok(s) = std::str::from_utf8(&bytes) {
        let r = RING.open(s);
        assert!(r.is_err(), "token changed at {at} still opens: {r:?}");
    }
});
