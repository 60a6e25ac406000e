//! The in-memory file tree behind the sample API, and its Box JSON shapes.
//!
//! Shapes follow Box's standard representations closely enough that the
//! gateway's resource lookups (path_collection, etag, sha1, file_version)
//! behave as they would against the real API.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use super::ApiError;
use super::shape::{Page, View};

/// 2026-01-01T00:00:00Z: when the seeded tree was "made".
const SEEDED_AT: u64 = 1_767_225_600;

fn now() -> u64 {
    crate::clock::unix_now()
}

/// Box's id for the root folder of every user.
pub const ROOT: &str = "0";

/// Bytes kept per file: enough for a demo download, small enough that a
/// gigabyte upload costs nothing but its size and hash.
pub const STORED_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    // Declared first so listings put folders before files, as Box does.
    Folder,
    File,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Folder => "folder",
            Kind::File => "file",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    pub name: String,
    /// `None` only for the root.
    pub parent: Option<String>,
    /// At most [`STORED_BYTES`] of the content.
    pub content: Bytes,
    /// The full size as uploaded, which may exceed `content`.
    pub size: u64,
    pub sha1: String,
    /// Bumped on every change, and used as both etag and sequence_id, as
    /// Box bumps them together.
    pub revision: u64,
    /// Bumped on every content upload; names the file_version.
    pub version: u64,
    /// Unix seconds; seeded items get fixed times so answers are stable.
    pub created_at: u64,
    /// Unix seconds of the last change of name, place or content.
    pub modified_at: u64,
}

impl Item {
    pub fn kind_str(&self) -> &'static str {
        self.kind.as_str()
    }
}

/// Content summary of an upload, computed while it streamed past.
pub struct Content {
    pub head: Bytes,
    pub size: u64,
    pub sha1: String,
}

impl Content {
    pub fn of(bytes: &[u8]) -> Content {
        Content {
            head: Bytes::copy_from_slice(&bytes[..bytes.len().min(STORED_BYTES)]),
            size: bytes.len() as u64,
            sha1: hex(
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes).as_ref(),
            ),
        }
    }
}

pub use crate::digest::hex;

pub struct Tree {
    items: BTreeMap<String, Item>,
    /// New items get ids well above the seeded ones so tests can tell them apart.
    next_id: u64,
}

impl Tree {
    /// The demo tree; see the module docs of `sample_api` for its layout.
    pub fn seeded() -> Tree {
        let mut t = Tree {
            items: BTreeMap::new(),
            next_id: 5000,
        };
        let folders = [
            (ROOT, "All Files", None),
            ("100", "Projects", Some(ROOT)),
            ("110", "Reports", Some("100")),
            ("111", "2026", Some("110")),
            ("200", "Private", Some(ROOT)),
        ];
        for (id, name, parent) in folders {
            t.insert(id, Kind::Folder, name, parent, Content::of(b""));
        }
        // Each seeded item a day apart from 2026-01-01, in seeding order.
        let mut day = SEEDED_AT;
        let files: [(&str, &str, &str, &[u8]); 4] = [
            ("1001", "plan.txt", "100", b"the plan\n"),
            ("1002", "summary.txt", "110", b"revenue is up\n"),
            ("1003", "q3.pdf", "111", b"%PDF-1.4 q3\n"),
            ("2001", "secret.txt", "200", b"top secret\n"),
        ];
        for (id, name, parent, body) in files {
            t.insert(id, Kind::File, name, Some(parent), Content::of(body));
        }
        for item in t.items.values_mut() {
            item.created_at = day;
            item.modified_at = day;
            day += 86_400;
        }
        t
    }

    fn insert(&mut self, id: &str, kind: Kind, name: &str, parent: Option<&str>, content: Content) {
        let item = Item {
            kind,
            name: name.to_owned(),
            parent: parent.map(str::to_owned),
            content: content.head,
            size: content.size,
            sha1: if kind == Kind::File {
                content.sha1
            } else {
                String::new()
            },
            revision: 0,
            version: 0,
            created_at: now(),
            modified_at: now(),
        };
        self.items.insert(id.to_owned(), item);
    }

    /// The item with this id, if it is of the wanted kind; anything else is
    /// the 404 Box gives for a file id used as a folder id.
    pub fn get(&self, id: &str, kind: Kind) -> Result<&Item, ApiError> {
        self.items
            .get(id)
            .filter(|i| i.kind == kind)
            .ok_or_else(|| ApiError::not_found(kind.as_str()))
    }

    pub fn children(&self, id: &str) -> Vec<(&String, &Item)> {
        let mut kids: Vec<_> = self
            .items
            .iter()
            .filter(|(_, i)| i.parent.as_deref() == Some(id))
            .collect();
        kids.sort_by(|a, b| (a.1.kind, &a.1.name).cmp(&(b.1.kind, &b.1.name)));
        kids
    }

    /// Any item by id.
    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &Item)> {
        self.items.iter()
    }

    /// Ancestors of `item`, root first.
    pub fn ancestors<'a>(&'a self, item: &'a Item) -> Vec<(&'a str, &'a Item)> {
        let mut out = Vec::new();
        let mut at = item.parent.as_deref();
        // Bounded by the item count, so a corrupted parent chain cannot loop.
        while let Some(pid) = at.filter(|_| out.len() <= self.items.len()) {
            let Some(p) = self.items.get(pid) else { break };
            out.push((pid, p));
            at = p.parent.as_deref();
        }
        out.reverse();
        out
    }

    pub fn file_json(&self, id: &str, view: &View) -> Result<Value, ApiError> {
        let item = self.get(id, Kind::File)?;
        Ok(self.item_json(id, item, view, &Page::default()))
    }

    pub fn folder_json(&self, id: &str, view: &View, page: &Page) -> Result<Value, ApiError> {
        let item = self.get(id, Kind::Folder)?;
        Ok(self.item_json(id, item, view, page))
    }

    pub fn items_json(&self, id: &str, view: &View, page: &Page) -> Result<Value, ApiError> {
        self.get(id, Kind::Folder)?;
        Ok(self.listing(id, view, page))
    }

    pub fn subtree_size(&self, id: &str) -> u64 {
        self.children(id)
            .iter()
            .map(|(cid, c)| match c.kind {
                Kind::File => c.size,
                Kind::Folder => self.subtree_size(cid),
            })
            .sum()
    }

    /// Checks a name for `parent` the way Box does: non-empty, no slashes,
    /// and unique among siblings (409 otherwise).
    pub fn check_name(
        &self,
        parent: &str,
        name: &str,
        except: Option<&str>,
    ) -> Result<(), ApiError> {
        let bad = name.is_empty()
            || name.len() > 255
            || name.contains(['/', '\\'])
            || name.trim() != name
            || name == "."
            || name == "..";
        if bad {
            return Err(ApiError::bad_request(
                "item_name_invalid",
                "Item name is invalid",
            ));
        }
        self.get(parent, Kind::Folder)?;
        let taken = self
            .children(parent)
            .into_iter()
            .find(|(cid, c)| c.name == name && Some(cid.as_str()) != except);
        if let Some((cid, c)) = taken {
            return Err(ApiError::conflict(self.mini(cid, c)));
        }
        Ok(())
    }

    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    pub fn create_folder(&mut self, name: &str, parent: &str) -> Result<String, ApiError> {
        self.check_name(parent, name, None)?;
        let id = self.fresh_id();
        self.insert(&id, Kind::Folder, name, Some(parent), Content::of(b""));
        Ok(id)
    }

    pub fn create_file(
        &mut self,
        name: &str,
        parent: &str,
        content: Content,
    ) -> Result<String, ApiError> {
        self.check_name(parent, name, None)?;
        let id = self.fresh_id();
        self.insert(&id, Kind::File, name, Some(parent), content);
        Ok(id)
    }

    pub fn new_version(
        &mut self,
        id: &str,
        name: Option<&str>,
        content: Content,
    ) -> Result<(), ApiError> {
        if let Some(name) = name {
            self.update(id, Kind::File, Some(name), None)?;
        } else {
            self.get(id, Kind::File)?;
        }
        self.set_content(id, content);
        Ok(())
    }

    fn set_content(&mut self, id: &str, content: Content) {
        if let Some(item) = self.items.get_mut(id) {
            item.content = content.head;
            item.size = content.size;
            item.sha1 = content.sha1;
            item.version += 1;
            item.revision += 1;
            item.modified_at = now();
        }
    }

    /// Rename and/or move.
    pub fn update(
        &mut self,
        id: &str,
        kind: Kind,
        name: Option<&str>,
        parent: Option<&str>,
    ) -> Result<(), ApiError> {
        let item = self.get(id, kind)?;
        let Some(current_parent) = item.parent.clone() else {
            return Err(ApiError::bad_request(
                "bad_request",
                "The root folder cannot be changed",
            ));
        };
        let name = name.unwrap_or(&item.name).to_owned();
        let parent = parent.unwrap_or(&current_parent).to_owned();
        if kind == Kind::Folder && self.is_within(&parent, id) {
            return Err(ApiError::bad_request(
                "bad_request",
                "A folder cannot move into itself",
            ));
        }
        self.check_name(&parent, &name, Some(id))?;
        if let Some(item) = self.items.get_mut(id) {
            item.name = name;
            item.parent = Some(parent);
            item.revision += 1;
            item.modified_at = now();
        }
        Ok(())
    }

    /// Whether `id` is `ancestor` or lies below it.
    pub fn is_within(&self, id: &str, ancestor: &str) -> bool {
        let mut at = Some(id);
        for _ in 0..=self.items.len() {
            match at {
                Some(a) if a == ancestor => return true,
                Some(a) => at = self.items.get(a).and_then(|i| i.parent.as_deref()),
                None => return false,
            }
        }
        false
    }

    pub fn delete(&mut self, id: &str, kind: Kind, recursive: bool) -> Result<(), ApiError> {
        if id == ROOT {
            return Err(ApiError::bad_request(
                "bad_request",
                "The root folder cannot be deleted",
            ));
        }
        self.get(id, kind)?;
        let kids: Vec<String> = self
            .children(id)
            .into_iter()
            .map(|(c, _)| c.clone())
            .collect();
        if !kids.is_empty() && !recursive {
            return Err(ApiError::bad_request(
                "folder_not_empty",
                "The folder is not empty",
            ));
        }
        for kid in kids {
            let kind = self.items.get(&kid).map_or(Kind::File, |i| i.kind);
            self.delete(&kid, kind, true)?;
        }
        self.items.remove(id);
        Ok(())
    }
}
