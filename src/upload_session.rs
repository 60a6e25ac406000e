//! Which item each chunked upload session was opened for.
//!
//! Box's chunked upload names the destination only once: the session is
//! created for a folder (`POST /api/2.0/files/upload_sessions` with
//! `folder_id`) or a file (`POST /api/2.0/files/{id}/upload_sessions`), and
//! every later call (parts, list, status, commit, abort) names only the
//! session id, which Box makes up. The upstream will not say which folder a
//! session belongs to (its session object has no folder), so the gateway
//! remembers it from the creation it checked: when a token restricted to an
//! item creates a session inside that item, the id in the upstream's answer
//! is recorded with the item that was checked. A later call with a
//! restricted token passes only if the session is known here and its item
//! is inside that token's restriction; an unknown session is refused (fail
//! closed), which includes sessions opened directly at the upstream, by an
//! unrestricted token, or on another replica (sticky routing keeps a
//! browser's upload on one replica; the entries are not shared).
//!
//! Bounded: at most [`CAPACITY`] live entries, each kept for Box's session
//! life; when full, expired entries are dropped first, then new sessions
//! are not recorded (and so cannot be used by restricted tokens).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::grant::Item;

/// Live sessions remembered at once.
pub const CAPACITY: usize = 100_000;

/// Box's upload sessions expire after 7 days.
pub const LIFE_SECS: u64 = 7 * 86_400;

/// Session id -> the item it was created for, with the expiry (unix s).
#[derive(Default)]
pub struct UploadSessions {
    entries: Mutex<HashMap<Box<str>, (Item, u64)>>,
}

impl UploadSessions {
    pub fn new() -> UploadSessions {
        UploadSessions::default()
    }

    /// Records `id` as opened for `item` at `now`; false when it could not
    /// be recorded (full, or an id that is not a plain token).
    pub fn remember(&self, id: &str, item: Item, now: u64) -> bool {
        if !plain(id) {
            return false;
        }
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, (_, exp)| *exp > now);
        }
        if map.len() >= CAPACITY && !map.contains_key(id) {
            return false;
        }
        map.insert(id.into(), (item, now + LIFE_SECS));
        true
    }

    /// The item session `id` was opened for, if it is known and alive.
    pub fn item_of(&self, id: &str, now: u64) -> Option<Item> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|(_, exp)| *exp > now)
            .map(|(item, _)| item.clone())
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Box's session ids are hex; anything with a delimiter is not one.
fn plain(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ItemKind;

    fn folder(id: &str) -> Item {
        Item {
            kind: ItemKind::Folder,
            id: id.into(),
        }
    }

    #[test]
    fn remembers_until_expiry() {
        let s = UploadSessions::new();
        assert!(s.remember("ABC123", folder("100"), 1000));
        assert_eq!(s.item_of("ABC123", 1001), Some(folder("100")));
        assert_eq!(s.item_of("ABC123", 1000 + LIFE_SECS), None);
        assert_eq!(s.item_of("OTHER", 1001), None);
        assert!(!s.remember("../x", folder("100"), 1000));
        assert!(!s.remember("", folder("100"), 1000));
    }
}
