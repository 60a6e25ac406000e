//! The in-memory revocation set: the check every proxied request runs.
//!
//! Every request asks one question, [`RevocationState::is_revoked`], so it
//! must be cheap and never wait on a writer for long: token, family and
//! subject entries live in sharded [`DashMap`]s (a lookup hashes the key and
//! read-locks one shard), and the effective cutoff is published in two
//! atomics, so the check does a bounded number of lookups and no allocation.
//!
//! Memory is the other constraint: a burst of per-token revocations can leave
//! a million entries. Token and family maps are keyed by the 16-byte
//! [`Digest`] with a 24-byte value, about 40 bytes a slot before the hash
//! table's slack.
//!
//! A cached grant skips the lookups altogether while nothing has been
//! revoked since it was last checked ([`RevocationState::is_revoked_checked`]):
//! revocations are rare next to requests, so most requests read one atomic
//! instead of probing four maps, whose slots at a million entries are cache
//! misses.
//!
//! Entries stay until their `keep_until` passes and [`RevocationState::sweep`]
//! drops them. An expired entry that has not been swept yet still answers
//! "revoked"; that is harmless, since every token it covers has expired too.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::event::{Event, Source, Target};
use crate::digest::Digest;

/// What is kept per token, family or subject entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// Unix seconds; the entry may be dropped once this has passed.
    keep_until: u64,
    /// For subject entries this is the coverage (tokens issued at or before
    /// this second are revoked); for the others it is kept for snapshots.
    revoked_at_ms: u64,
    /// Kept so a compacted log says who asked, as the original did.
    source: Source,
}

impl Entry {
    fn of(ev: &Event) -> Entry {
        Entry {
            keep_until: ev.keep_until,
            revoked_at_ms: ev.revoked_at_ms,
            source: ev.source,
        }
    }

    /// Folds a second event for the same key into this entry; true if
    /// anything changed. Taking the maximum of both fields never revokes a
    /// live token that neither event revokes: a later `revoked_at` covers a
    /// superset, and a longer `keep_until` only outlives tokens that expired.
    fn merge(&mut self, new: Entry, coverage_by_time: bool) -> bool {
        let mut changed = false;
        if new.keep_until > self.keep_until {
            self.keep_until = new.keep_until;
            changed = true;
        }
        if coverage_by_time && new.revoked_at_ms > self.revoked_at_ms {
            self.revoked_at_ms = new.revoked_at_ms;
            self.source = new.source;
            changed = true;
        }
        changed
    }
}

/// One "everything issued before" entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cutoff {
    issued_before: u64,
    entry: Entry,
}

impl Cutoff {
    /// True if `self` makes `other` redundant: it revokes at least as much,
    /// for at least as long.
    fn covers(&self, other: &Cutoff) -> bool {
        self.issued_before >= other.issued_before && self.entry.keep_until >= other.entry.keep_until
    }
}

/// Entry counts per kind, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Single-token entries.
    pub tokens: usize,
    /// Family (parent token) entries.
    pub families: usize,
    /// Subject entries.
    pub subjects: usize,
    /// Cutoff entries that are not made redundant by another cutoff.
    pub cutoffs: usize,
}

/// Where a token's last "not revoked" verdict was reached: the state's
/// generation at the time. Lives with the cached grant.
#[derive(Debug)]
pub struct Checked(AtomicU64);

impl Checked {
    /// Never checked: matches no generation.
    pub const fn new() -> Checked {
        Checked(AtomicU64::new(NEVER))
    }
}

impl Default for Checked {
    fn default() -> Self {
        Self::new()
    }
}

/// A generation no state ever has.
const NEVER: u64 = u64::MAX;

/// Hands each state its own range of generations (the top 24 bits), so a
/// mark reached against one state never matches another.
static STATES: AtomicU64 = AtomicU64::new(0);

/// Every revocation this gateway knows of, shaped for the per-request check.
/// `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct RevocationState {
    /// Revoked tokens, by digest of the token.
    tokens: DashMap<Digest, Entry>,
    /// Revoked families, by digest of the parent token.
    families: DashMap<Digest, Entry>,
    /// Revoked subjects; `Box<str>` keys so a lookup can borrow a `&str`.
    subjects: DashMap<Box<str>, Entry>,
    /// The cutoffs themselves, only those not covered by another. There are
    /// few, so a plain list under a mutex; readers never take it.
    cutoffs: Mutex<Vec<Cutoff>>,
    /// Highest `issued_before` among `cutoffs` (0 when none, which revokes
    /// nothing since `iat < 0` never holds). Published under the mutex.
    cutoff_max: AtomicU64,
    /// Whether any cutoff exists: a token of unknown age is revoked by any.
    cutoff_any: AtomicBool,
    /// Moves on after every applied event, never on a sweep (which only
    /// forgets what has expired): a "not revoked" verdict reached while it
    /// read `g` holds for as long as it reads `g`.
    generation: AtomicU64,
}

impl Default for RevocationState {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationState {
    /// An empty set.
    pub fn new() -> Self {
        let range = STATES.fetch_add(1, Ordering::Relaxed) % (1 << 24);
        RevocationState {
            tokens: DashMap::new(),
            families: DashMap::new(),
            subjects: DashMap::new(),
            cutoffs: Mutex::new(Vec::new()),
            cutoff_max: AtomicU64::new(0),
            cutoff_any: AtomicBool::new(false),
            generation: AtomicU64::new(range << 40),
        }
    }

    /// Applies an event; true if it changed the state. Applying the same
    /// event twice is harmless, and a later `keep_until` (or, for a subject,
    /// a later revocation time) extends the existing entry.
    pub fn apply(&self, ev: &Event) -> bool {
        let changed = self.apply_entry(ev);
        // After the entry is in place, and on every event (also one that
        // changed nothing): a check that read the old generation may have
        // missed the entry, so its mark must not match from here on.
        self.generation.fetch_add(1, Ordering::AcqRel);
        changed
    }

    fn apply_entry(&self, ev: &Event) -> bool {
        let new = Entry::of(ev);
        match &ev.target {
            Target::Token(d) => merge_into(&self.tokens, *d, new, false),
            Target::Family(d) => merge_into(&self.families, *d, new, false),
            Target::Subject(s) => {
                // Avoid allocating the key when the subject is already there.
                if let Some(mut existing) = self.subjects.get_mut(s.as_str()) {
                    return existing.merge(new, true);
                }
                merge_into(&self.subjects, Box::from(s.as_str()), new, true)
            }
            Target::Cutoff { issued_before } => self.apply_cutoff(Cutoff {
                issued_before: *issued_before,
                entry: new,
            }),
        }
    }

    fn apply_cutoff(&self, new: Cutoff) -> bool {
        let mut list = self.lock_cutoffs();
        if list.iter().any(|c| c.covers(&new)) {
            return false;
        }
        list.retain(|c| !new.covers(c));
        list.push(new);
        self.publish_cutoffs(&list);
        true
    }

    /// The single check the proxy runs on every request.
    ///
    /// `token_hash` is the digest of the presented token, `family` the digest
    /// of the parent it was minted from (for a parent token, its own digest),
    /// `iat` its issue time in unix seconds if known. A token whose `iat` is
    /// unknown is revoked by any subject entry for its subject and by any
    /// cutoff: when in doubt, refuse.
    pub fn is_revoked(
        &self,
        token_hash: &Digest,
        family: &Digest,
        subject: Option<&str>,
        iat: Option<u64>,
    ) -> bool {
        if self.tokens.contains_key(token_hash)
            || self.families.contains_key(family)
            || self.families.contains_key(token_hash)
        {
            return true;
        }
        let by_cutoff = match iat {
            Some(iat) => iat < self.cutoff_max.load(Ordering::Acquire),
            None => self.cutoff_any.load(Ordering::Acquire),
        };
        if by_cutoff {
            return true;
        }
        if let Some(subject) = subject
            && let Some(entry) = self.subjects.get(subject)
        {
            return match iat {
                Some(iat) => iat <= entry.revoked_at_ms / 1000,
                None => true,
            };
        }
        false
    }

    /// [`RevocationState::is_revoked`] for a token whose last verdict is
    /// kept in `mark`: while no event has been applied since that verdict
    /// was "not revoked", the answer is the same without a lookup.
    pub fn is_revoked_checked(
        &self,
        mark: &Checked,
        token_hash: &Digest,
        family: &Digest,
        subject: Option<&str>,
        iat: Option<u64>,
    ) -> bool {
        // Read before the lookups: an event applied after this read moves
        // the generation past it, so the mark stored below cannot hide it.
        let generation = self.generation.load(Ordering::Acquire);
        if mark.0.load(Ordering::Relaxed) == generation {
            return false;
        }
        if self.is_revoked(token_hash, family, subject, iat) {
            return true;
        }
        mark.0.store(generation, Ordering::Relaxed);
        false
    }

    /// Drops entries whose `keep_until` is before `now` (unix seconds);
    /// returns how many were dropped.
    pub fn sweep(&self, now: u64) -> usize {
        let mut dropped = 0;
        let mut keep = |e: &Entry| {
            let live = e.keep_until >= now;
            if !live {
                dropped += 1;
            }
            live
        };
        self.tokens.retain(|_, e| keep(e));
        self.families.retain(|_, e| keep(e));
        self.subjects.retain(|_, e| keep(e));
        let mut list = self.lock_cutoffs();
        list.retain(|c| keep(&c.entry));
        self.publish_cutoffs(&list);
        dropped
    }

    /// Number of entries of all kinds.
    pub fn len(&self) -> usize {
        let c = self.counts();
        c.tokens + c.families + c.subjects + c.cutoffs
    }

    /// True if nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry counts per kind.
    pub fn counts(&self) -> Counts {
        Counts {
            tokens: self.tokens.len(),
            families: self.families.len(),
            subjects: self.subjects.len(),
            cutoffs: self.lock_cutoffs().len(),
        }
    }

    /// Every entry as an event, for log compaction. Applying the result to an
    /// empty state reproduces this one. Entries applied concurrently may or
    /// may not be included.
    pub fn snapshot(&self) -> Vec<Event> {
        let mut out = Vec::with_capacity(self.len());
        let event = |target, e: &Entry| Event {
            target,
            revoked_at_ms: e.revoked_at_ms,
            keep_until: e.keep_until,
            source: e.source,
        };
        for r in self.tokens.iter() {
            out.push(event(Target::Token(*r.key()), r.value()));
        }
        for r in self.families.iter() {
            out.push(event(Target::Family(*r.key()), r.value()));
        }
        for r in self.subjects.iter() {
            out.push(event(Target::Subject(r.key().to_string()), r.value()));
        }
        for c in self.lock_cutoffs().iter() {
            let target = Target::Cutoff {
                issued_before: c.issued_before,
            };
            out.push(event(target, &c.entry));
        }
        out
    }

    fn lock_cutoffs(&self) -> std::sync::MutexGuard<'_, Vec<Cutoff>> {
        // Nothing panics while holding this lock, and the list is valid after
        // any single push or retain, so a poisoned lock is still usable.
        self.cutoffs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Republishes the atomics from the list; called with the lock held so
    /// publications happen in list order.
    fn publish_cutoffs(&self, list: &[Cutoff]) {
        let max = list.iter().map(|c| c.issued_before).max().unwrap_or(0);
        self.cutoff_max.store(max, Ordering::Release);
        self.cutoff_any.store(!list.is_empty(), Ordering::Release);
    }
}

fn merge_into<K>(map: &DashMap<K, Entry>, key: K, new: Entry, by_time: bool) -> bool
where
    K: Eq + std::hash::Hash,
{
    match map.entry(key) {
        MapEntry::Occupied(mut o) => o.get_mut().merge(new, by_time),
        MapEntry::Vacant(v) => {
            v.insert(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ev(target: Target, revoked_at_ms: u64, keep_until: u64) -> Event {
        Event {
            target,
            revoked_at_ms,
            keep_until,
            source: Source::Api,
        }
    }

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    /// A token `name` from parent `parent` held by `sub`, issued at `iat`.
    fn check(s: &RevocationState, name: &str, parent: &str, sub: &str, iat: Option<u64>) -> bool {
        s.is_revoked(&d(name), &d(parent), Some(sub), iat)
    }

    #[test]
    fn empty_state_revokes_nothing() {
        let s = RevocationState::new();
        assert!(s.is_empty());
        assert!(!check(&s, "t", "p", "u", None));
        assert!(!s.is_revoked(&d("t"), &d("p"), None, None));
    }

    #[test]
    fn token_entry_revokes_exactly_that_token() {
        let s = RevocationState::new();
        assert!(s.apply(&ev(Target::Token(d("t1")), 0, 100)));
        assert!(check(&s, "t1", "p", "u", Some(5)));
        assert!(check(&s, "t1", "other", "v", None));
        assert!(!check(&s, "t2", "p", "u", Some(5)));
        // A token digest never matches as a family.
        assert!(!check(&s, "x", "t1", "u", Some(5)));
    }

    #[test]
    fn family_entry_revokes_children_and_the_parent_itself() {
        let s = RevocationState::new();
        s.apply(&ev(Target::Family(d("parent")), 0, 100));
        assert!(check(&s, "child1", "parent", "u", Some(1)));
        assert!(check(&s, "child2", "parent", "v", None));
        // The parent token presented directly: its own hash is the family.
        assert!(s.is_revoked(&d("parent"), &d("parent"), None, None));
        assert!(s.is_revoked(&d("parent"), &d("unrelated"), None, Some(1)));
        assert!(!check(&s, "child3", "other", "u", Some(1)));
    }

    #[test]
    fn subject_entry_revokes_tokens_issued_at_or_before() {
        let s = RevocationState::new();
        // revoked_at = 1000 s (ms are truncated).
        s.apply(&ev(Target::Subject("alice".into()), 1_000_999, 5000));
        assert!(check(&s, "t", "p", "alice", Some(999)));
        assert!(check(&s, "t", "p", "alice", Some(1000)));
        assert!(!check(&s, "t", "p", "alice", Some(1001)));
        assert!(!check(&s, "t", "p", "bob", Some(10)));
        assert!(!s.is_revoked(&d("t"), &d("p"), None, Some(10)));
        // Unknown age: fail closed for alice only.
        assert!(check(&s, "t", "p", "alice", None));
        assert!(!check(&s, "t", "p", "bob", None));
    }

    #[test]
    fn later_subject_event_extends_coverage_and_lifetime() {
        let s = RevocationState::new();
        assert!(s.apply(&ev(Target::Subject("alice".into()), 1_000_000, 5000)));
        assert!(!check(&s, "t", "p", "alice", Some(1500)));
        assert!(s.apply(&ev(Target::Subject("alice".into()), 2_000_000, 4000)));
        assert!(check(&s, "t", "p", "alice", Some(1500)));
        // An earlier one changes nothing.
        assert!(!s.apply(&ev(Target::Subject("alice".into()), 500_000, 100)));
        assert_eq!(s.len(), 1);
        let snap = s.snapshot();
        assert_eq!(snap[0].revoked_at_ms, 2_000_000);
        assert_eq!(snap[0].keep_until, 5000);
    }

    #[test]
    fn cutoff_revokes_strictly_earlier_tokens() {
        let s = RevocationState::new();
        s.apply(&ev(Target::Cutoff { issued_before: 500 }, 0, 1000));
        assert!(check(&s, "t", "p", "u", Some(499)));
        assert!(!check(&s, "t", "p", "u", Some(500)));
        assert!(!check(&s, "t", "p", "u", Some(501)));
        // Unknown age: any cutoff revokes.
        assert!(check(&s, "t", "p", "u", None));
        assert!(s.is_revoked(&d("t"), &d("p"), None, None));
    }

    #[test]
    fn zero_cutoff_still_revokes_unknown_age() {
        let s = RevocationState::new();
        s.apply(&ev(Target::Cutoff { issued_before: 0 }, 0, 1000));
        assert!(!check(&s, "t", "p", "u", Some(0)));
        assert!(check(&s, "t", "p", "u", None));
    }

    #[test]
    fn highest_live_cutoff_wins_and_redundant_ones_are_dropped() {
        let s = RevocationState::new();
        assert!(s.apply(&ev(Target::Cutoff { issued_before: 100 }, 0, 1000)));
        // Covers the first: revokes more, for as long.
        assert!(s.apply(&ev(Target::Cutoff { issued_before: 200 }, 0, 1000)));
        assert_eq!(s.counts().cutoffs, 1);
        // Covered by the second: no change.
        assert!(!s.apply(&ev(Target::Cutoff { issued_before: 150 }, 0, 900)));
        // Revokes more but for less time: both kept.
        assert!(s.apply(&ev(Target::Cutoff { issued_before: 300 }, 0, 500)));
        assert_eq!(s.counts().cutoffs, 2);
        assert!(check(&s, "t", "p", "u", Some(299)));
        // After the 300 cutoff expires, the 200 one still applies.
        assert_eq!(s.sweep(501), 1);
        assert!(!check(&s, "t", "p", "u", Some(250)));
        assert!(check(&s, "t", "p", "u", Some(199)));
        assert_eq!(s.sweep(1001), 1);
        assert!(!check(&s, "t", "p", "u", Some(0)));
        assert!(!check(&s, "t", "p", "u", None));
        assert!(s.is_empty());
    }

    #[test]
    fn apply_is_idempotent_and_later_keep_until_extends() {
        let s = RevocationState::new();
        let e = ev(Target::Token(d("t")), 7, 100);
        assert!(s.apply(&e));
        assert!(!s.apply(&e));
        assert!(!s.apply(&ev(Target::Token(d("t")), 9, 50)));
        assert_eq!(s.len(), 1);
        assert!(s.apply(&ev(Target::Token(d("t")), 9, 200)));
        assert_eq!(s.sweep(150), 0);
        assert!(check(&s, "t", "p", "u", Some(1)));
        // The first revocation time is kept for token entries.
        assert_eq!(s.snapshot()[0].revoked_at_ms, 7);
        let f = ev(Target::Family(d("p")), 1, 100);
        assert!(s.apply(&f));
        assert!(!s.apply(&f));
        let c = ev(Target::Cutoff { issued_before: 9 }, 1, 100);
        assert!(s.apply(&c));
        assert!(!s.apply(&c));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn sweep_drops_only_expired_entries() {
        let s = RevocationState::new();
        s.apply(&ev(Target::Token(d("old")), 0, 99));
        s.apply(&ev(Target::Token(d("edge")), 0, 100));
        s.apply(&ev(Target::Family(d("fam-old")), 0, 10));
        s.apply(&ev(Target::Family(d("fam-new")), 0, 1000));
        s.apply(&ev(Target::Subject("gone".into()), 0, 50));
        s.apply(&ev(Target::Subject("stays".into()), 0, 500));
        s.apply(&ev(Target::Cutoff { issued_before: 5 }, 0, 20));
        assert_eq!(s.len(), 7);
        // keep_until == now is still kept; strictly before is dropped.
        assert_eq!(s.sweep(100), 4);
        assert_eq!(
            s.counts(),
            Counts {
                tokens: 1,
                families: 1,
                subjects: 1,
                cutoffs: 0
            }
        );
        assert!(check(&s, "edge", "p", "u", Some(1)));
        assert!(!check(&s, "old", "p", "u", Some(1)));
        assert!(!check(&s, "t", "fam-old", "gone", None));
        assert!(check(&s, "t", "fam-new", "u", Some(1)));
        assert_eq!(s.sweep(100), 0);
    }

    #[test]
    fn snapshot_rebuilds_an_equal_state() {
        let s = RevocationState::new();
        s.apply(&ev(Target::Token(d("t")), 1, 100));
        s.apply(&ev(Target::Family(d("f")), 2, 200));
        s.apply(&Event {
            source: Source::Admin,
            ..ev(Target::Subject("bob".into()), 3_000, 300)
        });
        s.apply(&ev(Target::Cutoff { issued_before: 4 }, 4, 400));
        let snap = s.snapshot();
        assert_eq!(snap.len(), 4);
        let rebuilt = RevocationState::new();
        for e in &snap {
            assert!(rebuilt.apply(e));
        }
        let key = |e: &Event| e.to_json();
        let mut a: Vec<String> = snap.iter().map(key).collect();
        let mut b: Vec<String> = rebuilt.snapshot().iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(snap.iter().any(|e| e.source == Source::Admin));
    }

    #[test]
    fn entries_stay_compact() {
        // Key plus value of a token entry; the budget is < 100 bytes per entry
        // including the hash table's slack.
        assert!(std::mem::size_of::<(Digest, Entry)>() <= 40);
    }

    #[test]
    fn concurrent_apply_and_check() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RevocationState>();
        let s = Arc::new(RevocationState::new());
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..500 {
                        s.apply(&ev(Target::Token(d(&format!("{w}-{i}"))), 0, 10));
                        s.apply(&ev(Target::Cutoff { issued_before: i }, 0, 10));
                    }
                })
            })
            .collect();
        for _ in 0..1000 {
            let _ = s.is_revoked(&d("x"), &d("y"), Some("z"), Some(1));
        }
        for w in writers {
            w.join().expect("writer thread");
        }
        assert_eq!(s.counts().tokens, 2000);
        assert_eq!(s.counts().cutoffs, 1);
        assert!(check(&s, "t", "p", "u", Some(498)));
        assert!(check(&s, "3-499", "p", "u", Some(10_000)));
        assert_eq!(s.sweep(11), 2001);
    }
    /// The fast path answers like the full check: a mark found clean before
    /// any kind of revocation is refused after it.
    #[test]
    fn a_clean_mark_never_hides_a_later_revocation() {
        let kinds = [
            Target::Token(d("t")),
            Target::Family(d("p")),
            // The token presented is itself a revoked parent.
            Target::Family(d("t")),
            Target::Subject("alice".into()),
            Target::Cutoff { issued_before: 50 },
        ];
        for kind in kinds {
            let s = RevocationState::new();
            let mark = Checked::new();
            let ask =
                |m: &Checked| s.is_revoked_checked(m, &d("t"), &d("p"), Some("alice"), Some(10));
            assert!(!ask(&mark));
            // Now on the fast path; an unrelated revocation keeps it honest too.
            assert!(!ask(&mark));
            s.apply(&ev(Target::Token(d("unrelated")), 0, 100));
            assert!(!ask(&mark));
            s.apply(&ev(kind.clone(), 20_000, 100));
            assert!(ask(&mark), "{kind:?} missed by a cached verdict");
            assert!(ask(&mark), "{kind:?} forgotten on the second ask");
        }
    }

    #[test]
    fn a_mark_from_one_state_means_nothing_to_another() {
        let a = RevocationState::new();
        let b = RevocationState::new();
        b.apply(&ev(Target::Token(d("t")), 0, 100));
        let mark = Checked::new();
        assert!(!a.is_revoked_checked(&mark, &d("t"), &d("p"), None, Some(1)));
        assert!(b.is_revoked_checked(&mark, &d("t"), &d("p"), None, Some(1)));
    }

    /// Readers hammer one mark while writers revoke: once `apply` has
    /// returned, every later check through the mark sees the entry.
    #[test]
    fn a_revocation_is_seen_through_a_hot_mark_once_applied() {
        let s = Arc::new(RevocationState::new());
        let mark = Arc::new(Checked::new());
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (s, mark, stop) = (s.clone(), mark.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = s.is_revoked_checked(&mark, &d("victim"), &d("p"), None, Some(1));
                    }
                })
            })
            .collect();
        for i in 0..2000 {
            s.apply(&ev(Target::Token(d(&format!("other-{i}"))), 0, 10));
        }
        s.apply(&ev(Target::Token(d("victim")), 0, 10));
        for _ in 0..1000 {
            assert!(s.is_revoked_checked(&mark, &d("victim"), &d("p"), None, Some(1)));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().expect("reader thread");
        }
    }
}
