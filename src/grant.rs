//! Grants: what a bearer token is allowed, once verified.
//!
//! A [`Grant`] can only be built here, from claims that opened under the
//! keyring or from an active introspection answer; raw token bytes never
//! reach the policy check. Grants are cached (moka) by the token's digest,
//! which is also the token's name in revocation events, until the token
//! expires or, for introspected tokens, the configured TTL, whichever is
//! first. A cached grant is still checked against each route and against
//! revocation on every request: the cache saves crypto and network, never a
//! decision.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use moka::Expiry;

use crate::config::ExternalTokens;
use crate::digest::Digest;
use crate::error::Rejection;
use crate::introspect::{Introspected, Introspector};
use crate::policy::ItemKind;
use crate::revocation::Checked;
use crate::scope::{ScopeSet, ScopeTable};
use crate::token::{self, Claims, Keyring, TokenError};

/// One file or folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Item {
    pub kind: ItemKind,
    pub id: Box<str>,
}

/// What to send upstream in `Authorization` for an allowed request.
#[derive(Debug, Clone)]
pub enum Forward {
    /// A minted token: the parent goes upstream instead.
    Parent(HeaderValue),
    /// An external token goes upstream as it came.
    AsIs,
}

/// A verified token's rights. Fields are private: only this module builds one.
#[derive(Debug)]
pub struct Grant {
    scopes: ScopeSet,
    restricted_to: Option<Item>,
    subject: Option<Box<str>>,
    /// `login:<lower-cased login>`: the second subject key a revocation
    /// can name this grant by (SSF events name users by login).
    login_key: Option<Box<str>>,
    /// [`Grant::checked`] for the login key.
    login_checked: Checked,
    iat: Option<u64>,
    exp: u64,
    token_hash: Digest,
    family: Digest,
    forward: Forward,
    /// `BoxApi: shared_link=...` for a token minted from a shared link: sent
    /// upstream with every request of this token.
    box_api: Option<HeaderValue>,
    /// The revocation state's generation when this grant was last found
    /// not revoked: lets a cached grant skip the revocation lookups.
    checked: Checked,
}

impl Grant {
    /// The scopes held, after implication.
    pub fn scopes(&self) -> ScopeSet {
        self.scopes
    }
    pub fn restricted_to(&self) -> Option<&Item> {
        self.restricted_to.as_ref()
    }
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    pub fn iat(&self) -> Option<u64> {
        self.iat
    }
    pub fn login_key(&self) -> Option<&str> {
        self.login_key.as_deref()
    }
    pub fn login_checked(&self) -> &Checked {
        &self.login_checked
    }
    pub fn exp(&self) -> u64 {
        self.exp
    }
    pub fn token_hash(&self) -> &Digest {
        &self.token_hash
    }
    pub fn family(&self) -> &Digest {
        &self.family
    }
    pub fn forward(&self) -> &Forward {
        &self.forward
    }
    /// The `BoxApi` header value to send upstream, for a shared-link token.
    pub fn box_api(&self) -> Option<&HeaderValue> {
        self.box_api.as_ref()
    }
    /// Where the last "not revoked" verdict for this grant was reached.
    pub fn checked(&self) -> &Checked {
        &self.checked
    }
    pub fn is_minted(&self) -> bool {
        matches!(self.forward, Forward::Parent(_))
    }

    /// From claims that opened under the keyring. Unknown scope names are
    /// dropped: a grant is never widened by a name this gateway cannot read.
    pub fn from_claims(
        c: Claims,
        token_hash: Digest,
        table: &ScopeTable,
    ) -> Result<Grant, TokenError> {
        let restricted_to = match c.r {
            None => None,
            Some(r) => Some(Item {
                kind: ItemKind::parse(&r.k).ok_or(TokenError::Malformed)?,
                id: r.id.into(),
            }),
        };
        let parent = crate::upstream::bearer_value(&c.p).map_err(|_| TokenError::Malformed)?;
        let box_api =
            c.l.as_deref()
                .map(|l| HeaderValue::from_str(&format!("shared_link={l}")))
                .transpose()
                .map_err(|_| TokenError::Malformed)?;
        Ok(Grant {
            scopes: table.expand_lenient(c.s.iter().map(String::as_str)),
            restricted_to,
            subject: c.sub.map(Into::into),
            login_key: c.lg.map(|l| format!("login:{}", l.to_lowercase()).into()),
            login_checked: Checked::new(),
            iat: Some(c.iat),
            exp: c.exp,
            token_hash,
            family: c.fam,
            forward: Forward::Parent(parent),
            box_api,
            checked: Checked::new(),
        })
    }

    /// From an active introspection answer. The token is its own family, so
    /// revoking it as a parent also revokes what was minted from it.
    pub fn from_introspection(
        i: &Introspected,
        token_hash: Digest,
        table: &ScopeTable,
        now: u64,
        ttl: Duration,
    ) -> Grant {
        Grant {
            scopes: table.expand_lenient(i.scope.as_deref().unwrap_or("").split(' ')),
            restricted_to: None,
            subject: i.sub.as_deref().map(Into::into),
            login_key: None,
            login_checked: Checked::new(),
            iat: i.iat,
            exp: i.exp.unwrap_or(now + ttl.as_secs()),
            token_hash,
            family: token_hash,
            forward: Forward::AsIs,
            box_api: None,
            checked: Checked::new(),
        }
    }

    /// An unread external token the operator chose to pass through: every
    /// scope, no restriction, the upstream decides.
    fn pass_through(token_hash: Digest, now: u64, ttl: Duration) -> Grant {
        Grant {
            scopes: ScopeSet::ALL,
            restricted_to: None,
            subject: None,
            login_key: None,
            login_checked: Checked::new(),
            iat: None,
            exp: now + ttl.as_secs(),
            token_hash,
            family: token_hash,
            forward: Forward::AsIs,
            box_api: None,
            checked: Checked::new(),
        }
    }
}

/// A cache entry: a grant, or a remembered "inactive" answer.
#[derive(Clone)]
enum Resolved {
    Grant(Arc<Grant>, u64),
    Inactive(u64),
}

struct UntilExpiry;

impl Expiry<Digest, Resolved> for UntilExpiry {
    fn expire_after_create(&self, _: &Digest, v: &Resolved, _: Instant) -> Option<Duration> {
        let until = match v {
            Resolved::Grant(_, until) | Resolved::Inactive(until) => *until,
        };
        Some(Duration::from_secs(
            until.saturating_sub(crate::clock::unix_now()),
        ))
    }
}

/// Verified grants of gateway-minted tokens, by token digest.
///
/// A plain sharded map rather than moka: a hit is one shard read lock and
/// a hash probe, and an entry costs a key, an `Arc` and a generation (no
/// per-entry eviction bookkeeping). Expiry is checked on every hit; size is
/// bounded by sweeping expired entries, then dropping arbitrary ones, when
/// the map is full. The generation makes `forget_all` exact even against a
/// verification racing with it: an entry stored under an older generation
/// is never served.
struct MintedCache {
    map: dashmap::DashMap<Digest, (Arc<Grant>, u64)>,
    capacity: usize,
    generation: std::sync::atomic::AtomicU64,
}

impl MintedCache {
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn get(&self, hash: &Digest) -> Option<Arc<Grant>> {
        let e = self.map.get(hash)?;
        (e.1 == self.generation()).then(|| e.0.clone())
    }

    fn insert(&self, hash: Digest, grant: Arc<Grant>, generation: u64, now: u64) {
        if self.map.len() >= self.capacity {
            let current = self.generation();
            self.map
                .retain(|_, (g, gen_)| g.exp > now && *gen_ == current);
            let excess = self.map.len().saturating_sub(self.capacity * 9 / 10);
            if excess > 0 {
                let victims: Vec<Digest> = self.map.iter().take(excess).map(|e| *e.key()).collect();
                for k in victims {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(hash, (grant, generation));
    }

    fn clear(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.map.clear();
    }
}

/// Turns bearer tokens into grants, with the caches in front.
pub struct Grants {
    minted: MintedCache,
    /// External tokens (introspected or passed through): moka, whose
    /// `try_get_with` makes concurrent misses for one token share one call.
    cache: moka::future::Cache<Digest, Resolved>,
    keyring: arc_swap::ArcSwap<Keyring>,
    external: ExternalTokens,
    introspector: Option<Arc<Introspector>>,
}

/// How long an unread pass-through token is remembered.
const PASS_THROUGH_TTL: Duration = Duration::from_secs(60);

impl Grants {
    pub fn new(
        keyring: Arc<Keyring>,
        external: ExternalTokens,
        introspector: Option<Arc<Introspector>>,
        capacity: u64,
    ) -> Grants {
        Grants {
            minted: MintedCache {
                map: dashmap::DashMap::new(),
                capacity: capacity.clamp(1, usize::MAX as u64) as usize,
                generation: std::sync::atomic::AtomicU64::new(0),
            },
            cache: moka::future::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build(),
            keyring: arc_swap::ArcSwap::new(keyring),
            external,
            introspector,
        }
    }

    /// The keyring in force (replaced whole on reload).
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring.load_full()
    }

    /// Swaps in a new keyring. Cached grants are dropped: a key removed
    /// from the ring must stop verifying the tokens it minted at once.
    pub fn replace_keyring(&self, keyring: Keyring) {
        self.keyring.store(Arc::new(keyring));
        self.forget_all();
    }

    /// The grant for a bearer token, or the 401/503 to answer.
    pub async fn resolve(
        &self,
        token: &str,
        table: &ScopeTable,
        now: u64,
    ) -> Result<(Arc<Grant>, bool), Rejection> {
        if token.len() > token::MAX_TOKEN_LEN {
            return Err(Rejection::InvalidToken("malformed"));
        }
        let hash = Digest::of(token.as_bytes());
        if token.starts_with(token::PREFIX) {
            if let Some(g) = self.minted.get(&hash) {
                return if g.exp > now {
                    Ok((g, true))
                } else {
                    self.minted.map.remove(&hash);
                    Err(Rejection::InvalidToken("expired"))
                };
            }
            // Read before verifying: a forget_all from here on wins.
            let generation = self.minted.generation();
            let claims = self
                .keyring
                .load()
                .open(token)
                .map_err(|_| Rejection::InvalidToken("invalid"))?;
            let g = Grant::from_claims(claims, hash, table)
                .map_err(|_| Rejection::InvalidToken("invalid"))?;
            if g.exp <= now {
                return Err(Rejection::InvalidToken("expired"));
            }
            let g = Arc::new(g);
            self.minted.insert(hash, g.clone(), generation, now);
            return Ok((g, false));
        }
        if let Some(hit) = self.cache.get(&hash).await {
            return match hit {
                Resolved::Grant(g, _) if g.exp > now => Ok((g, true)),
                Resolved::Grant(..) => Err(Rejection::InvalidToken("expired")),
                Resolved::Inactive(_) => Err(Rejection::InvalidToken("not active")),
            };
        }
        let resolved = {
            match (self.external, &self.introspector) {
                (ExternalTokens::Introspect, Some(i)) => {
                    // try_get_with: concurrent misses for one token share one call.
                    let fut = async {
                        let answer = i.introspect(token).await.map_err(|_| ())?;
                        Ok::<_, ()>(match answer {
                            Some(a) => {
                                let g =
                                    Grant::from_introspection(&a, hash, table, now, i.cache_ttl());
                                let until = g.exp.min(now + i.cache_ttl().as_secs());
                                Resolved::Grant(Arc::new(g), until)
                            }
                            None => Resolved::Inactive(now + i.inactive_ttl().as_secs()),
                        })
                    };
                    let r = self
                        .cache
                        .try_get_with(hash, fut)
                        .await
                        .map_err(|_| Rejection::Unavailable("token introspection failed"))?;
                    return match r {
                        Resolved::Grant(g, _) if g.exp > now => Ok((g, false)),
                        Resolved::Grant(..) => Err(Rejection::InvalidToken("expired")),
                        Resolved::Inactive(_) => Err(Rejection::InvalidToken("not active")),
                    };
                }
                (ExternalTokens::PassThrough, _) => {
                    let g = Grant::pass_through(hash, now, PASS_THROUGH_TTL);
                    let until = g.exp;
                    Resolved::Grant(Arc::new(g), until)
                }
                _ => return Err(Rejection::InvalidToken("not issued by this gateway")),
            }
        };
        self.cache.insert(hash, resolved.clone()).await;
        match resolved {
            Resolved::Grant(g, _) => Ok((g, false)),
            Resolved::Inactive(_) => Err(Rejection::InvalidToken("not active")),
        }
    }

    /// Drops the cached grant of a revoked token. Broader revocations (family,
    /// subject, cut-off) leave the cache alone: every request checks the
    /// revocation state, and applying any event moves the state's generation,
    /// so each cached grant does the full lookup once more and the ones covered
    /// are refused; the others keep their cache entry.
    pub async fn evict(&self, ev: &crate::revocation::Event) {
        if let crate::revocation::Target::Token(h) = &ev.target {
            self.forget(h).await;
        }
    }

    /// Drops one token's cached grant (after its revocation).
    pub async fn forget(&self, token_hash: &Digest) {
        self.minted.map.remove(token_hash);
        self.cache.invalidate(token_hash).await;
    }

    /// Drops every cached grant (after a family, subject or cut-off
    /// revocation, or a policy reload that renumbers scopes).
    pub fn forget_all(&self) {
        self.minted.clear();
        self.cache.invalidate_all();
    }

    pub fn cached_entries(&self) -> u64 {
        self.minted.map.len() as u64 + self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> MintedCache {
        MintedCache {
            map: dashmap::DashMap::new(),
            capacity,
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn grant(n: u8, exp: u64) -> (Digest, Arc<Grant>) {
        let d = Digest::of(&[n]);
        let mut g = Grant::pass_through(d, 0, Duration::from_secs(0));
        g.exp = exp;
        (d, Arc::new(g))
    }

    #[test]
    fn an_entry_verified_before_forget_all_is_never_served() {
        let c = cache(10);
        let before = c.generation();
        let (d, g) = grant(1, 100);
        c.clear(); // a revocation or key rotation lands while verifying
        c.insert(d, g, before, 0);
        assert!(c.get(&d).is_none());
        let (d2, g2) = grant(2, 100);
        c.insert(d2, g2, c.generation(), 0);
        assert!(c.get(&d2).is_some());
    }

    #[test]
    fn the_map_stays_within_its_capacity_expired_first() {
        let c = cache(10);
        for n in 0..5 {
            let (d, g) = grant(n, 10); // expires at 10
            c.insert(d, g, 0, 0);
        }
        for n in 5..10 {
            let (d, g) = grant(n, 1000);
            c.insert(d, g, 0, 0);
        }
        // Full: the next insert at now=50 sweeps the five expired ones.
        let (d, g) = grant(200, 1000);
        c.insert(d, g, 0, 50);
        assert_eq!(c.map.len(), 6);
        for n in 0..100u8 {
            let (d, g) = grant(n.wrapping_add(100), 1000);
            c.insert(d, g, 0, 50);
            assert!(c.map.len() <= 10);
        }
    }
}
