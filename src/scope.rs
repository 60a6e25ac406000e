//! Scopes: names, the sets a grant holds, and the implication table.
//!
//! Every scope name the gateway knows gets a bit; a [`ScopeSet`] is a 128-bit
//! mask, so checking a route's scopes against a grant is one AND. The
//! [`ScopeTable`] also holds the implication closure (an app scope such as
//! `root_readwrite` implies the item and UI scopes), so grants are expanded
//! once when they are built and never again on the hot path.

use std::collections::HashMap;

/// Box's downscoping scopes and app scopes, known without configuration.
pub const BUILTIN_SCOPES: &[&str] = &[
    "base_explorer",
    "base_picker",
    "base_preview",
    "base_sidebar",
    "base_upload",
    "item_preview",
    "item_download",
    "item_read",
    "item_rename",
    "item_delete",
    "item_share",
    "item_upload",
    "item_comment",
    "item_task",
    "annotation_edit",
    "annotation_view_all",
    "annotation_view_self",
    "root_readonly",
    "root_readwrite",
    "manage_managed_users",
    "manage_groups",
    "manage_webhook",
    "manage_enterprise_properties",
    "manage_data_retention",
    "manage_legal_hold",
    "manage_triggers",
    "sign_requests.readwrite",
    "ai.readwrite",
];

/// The most scopes one table can name.
pub const MAX_SCOPES: usize = 128;

/// A set of scopes, as bits of a [`ScopeTable`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u128);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);
    /// Every scope: only for tokens the operator passes through unread.
    pub const ALL: ScopeSet = ScopeSet(u128::MAX);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn intersects(self, other: ScopeSet) -> bool {
        self.0 & other.0 != 0
    }

    /// True when every scope of `other` is in `self`.
    pub fn contains_all(self, other: ScopeSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | other.0)
    }

    fn with(self, bit: usize) -> ScopeSet {
        ScopeSet(self.0 | (1u128 << bit))
    }

    fn bits(self) -> impl Iterator<Item = usize> {
        (0..MAX_SCOPES).filter(move |b| self.0 & (1u128 << b) != 0)
    }
}

impl std::fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScopeSet({:#x})", self.0)
    }
}

/// Why a scope table could not be built. Each names the offending scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("unknown scope `{0}`")]
    Unknown(String),
    #[error("more than {MAX_SCOPES} scopes")]
    TooMany,
    #[error("scope name `{0}` is empty or holds a space, quote or control character")]
    BadName(String),
}

/// The scopes the gateway knows, and what each implies.
#[derive(Clone, Debug)]
pub struct ScopeTable {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// `closure[b]`: bit `b` and everything it implies, transitively.
    closure: Vec<ScopeSet>,
}

impl ScopeTable {
    /// Builds the table from the builtin scopes, `extra` names, and an
    /// implication table (`scope -> [implied scopes]`). Names in the
    /// implication table are declared by appearing there.
    pub fn new(
        extra: &[String],
        implies: &[(String, Vec<String>)],
    ) -> Result<ScopeTable, ScopeError> {
        let mut table = ScopeTable {
            names: Vec::new(),
            index: HashMap::new(),
            closure: Vec::new(),
        };
        let declared = BUILTIN_SCOPES
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
            .chain(
                implies
                    .iter()
                    .flat_map(|(k, v)| std::iter::once(k.clone()).chain(v.iter().cloned())),
            );
        for name in declared {
            table.declare(&name)?;
        }
        let n = table.names.len();
        table.closure = (0..n).map(|b| ScopeSet::EMPTY.with(b)).collect();
        // Direct edges, then a fixpoint: the table is small (<= 128).
        let mut edges = vec![ScopeSet::EMPTY; n];
        for (from, tos) in implies {
            let f = table.index[from.as_str()];
            for to in tos {
                edges[f] = edges[f].with(table.index[to.as_str()]);
            }
        }
        loop {
            let mut changed = false;
            for (b, edge) in edges.iter().enumerate() {
                let mut acc = table.closure[b];
                for e in edge.bits() {
                    acc = acc.union(table.closure[e]);
                }
                if acc != table.closure[b] {
                    table.closure[b] = acc;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(table)
    }

    fn declare(&mut self, name: &str) -> Result<(), ScopeError> {
        if self.index.contains_key(name) {
            return Ok(());
        }
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b <= b' ' || b == b'"' || b == b'\\' || b >= 0x7f)
        {
            return Err(ScopeError::BadName(name.to_string()));
        }
        if self.names.len() == MAX_SCOPES {
            return Err(ScopeError::TooMany);
        }
        self.index.insert(name.to_string(), self.names.len());
        self.names.push(name.to_string());
        Ok(())
    }

    /// The set holding exactly the named scopes (no implication).
    pub fn exact<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<ScopeSet, ScopeError> {
        let mut set = ScopeSet::EMPTY;
        for n in names {
            let b = *self
                .index
                .get(n)
                .ok_or_else(|| ScopeError::Unknown(n.to_string()))?;
            set = set.with(b);
        }
        Ok(set)
    }

    /// The named scopes plus everything they imply. Unknown names are
    /// ignored: a grant is never widened by a name this table cannot read.
    pub fn expand_lenient<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> ScopeSet {
        names
            .into_iter()
            .filter_map(|n| self.index.get(n))
            .fold(ScopeSet::EMPTY, |acc, &b| acc.union(self.closure[b]))
    }

    /// The closure of a set under implication.
    pub fn expand(&self, set: ScopeSet) -> ScopeSet {
        set.bits()
            .fold(ScopeSet::EMPTY, |acc, b| acc.union(self.closure[b]))
    }

    /// Names of the scopes in a set, in table order.
    pub fn names(&self, set: ScopeSet) -> Vec<&str> {
        set.bits()
            .filter_map(|b| self.names.get(b).map(String::as_str))
            .collect()
    }

    /// Space-separated names, as OAuth writes a scope list.
    pub fn join(&self, set: ScopeSet) -> String {
        self.names(set).join(" ")
    }

    pub fn is_known(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ScopeTable {
        ScopeTable::new(
            &[],
            &[
                (
                    "root_readwrite".into(),
                    vec!["root_readonly".into(), "item_upload".into()],
                ),
                (
                    "root_readonly".into(),
                    vec!["item_read".into(), "item_preview".into()],
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn implication_is_transitive() {
        let t = table();
        let rw = t.expand_lenient(["root_readwrite"]);
        assert!(
            rw.contains_all(
                t.exact(["item_read", "item_upload", "root_readonly"])
                    .unwrap()
            )
        );
        let ro = t.expand_lenient(["root_readonly"]);
        assert!(!ro.intersects(t.exact(["item_upload"]).unwrap()));
    }

    #[test]
    fn unknown_names_are_errors_when_exact_and_dropped_when_lenient() {
        let t = table();
        assert_eq!(t.exact(["nope"]), Err(ScopeError::Unknown("nope".into())));
        assert!(t.expand_lenient(["nope"]).is_empty());
    }

    #[test]
    fn bad_names_are_refused() {
        let err = ScopeTable::new(&["has space".into()], &[]).unwrap_err();
        assert_eq!(err, ScopeError::BadName("has space".into()));
    }

    #[test]
    fn names_round_trip() {
        let t = table();
        let s = t.exact(["item_read", "base_upload"]).unwrap();
        let mut names = t.names(s);
        names.sort();
        assert_eq!(names, ["base_upload", "item_read"]);
    }
}
