//! Folder subtrees: is an item inside the folder a token is restricted to?
//!
//! The upstream knows the tree; the gateway asks it, with the token's parent,
//! for the item's `path_collection` (every ancestor folder, root first) and
//! `parent`, and allows the request only if the restricted folder is among
//! them. Answers are cached (moka) by item for a bounded TTL, and concurrent
//! lookups for one item share one upstream call.
//!
//! The trade-off of the TTL: an item moved out of the folder stays reachable
//! with a folder token for at most the TTL. Ancestry is a fact about the
//! item, not the caller, so the cache is shared across tokens; the upstream
//! still decides, with each request's own parent, whether that user may see
//! the item.

use std::sync::Arc;

use http::HeaderValue;

use crate::config::Subtree;
use crate::grant::Item;
use crate::metrics::Metrics;
use crate::policy::ItemKind;
use crate::upstream::Client;

/// Why the ancestry of an item is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AncestryError {
    /// The upstream says the item does not exist or the parent cannot see it.
    NotVisible,
    /// The upstream could not be asked (answered 503 by the caller).
    Unavailable,
}

pub struct Ancestry {
    cache: moka::future::Cache<Item, Arc<[Box<str>]>>,
    client: Client,
    api: http::Uri,
    metrics: Metrics,
}

impl Ancestry {
    pub fn new(cfg: &Subtree, client: Client, api: http::Uri, metrics: Metrics) -> Ancestry {
        Ancestry {
            cache: moka::future::Cache::builder()
                .max_capacity(cfg.cache_entries)
                .time_to_live(cfg.cache_ttl)
                .build(),
            client,
            api,
            metrics,
        }
    }

    /// True when `item` is `folder` or lies below it.
    pub async fn is_within(
        &self,
        item: &Item,
        folder: &str,
        parent: &HeaderValue,
    ) -> Result<bool, AncestryError> {
        if item.kind == ItemKind::Folder && &*item.id == folder {
            return Ok(true);
        }
        let ancestors = self.ancestors(item, parent).await?;
        Ok(ancestors.iter().any(|a| &**a == folder))
    }

    /// The ids of every folder above `item`, root first.
    async fn ancestors(
        &self,
        item: &Item,
        parent: &HeaderValue,
    ) -> Result<Arc<[Box<str>]>, AncestryError> {
        if let Some(hit) = self.cache.get(item).await {
            self.metrics
                .ancestry_lookups
                .with_label_values(&["hit"])
                .inc();
            return Ok(hit);
        }
        let result = self
            .cache
            .try_get_with(item.clone(), async {
                self.metrics
                    .ancestry_lookups
                    .with_label_values(&["miss"])
                    .inc();
                self.fetch(item, parent).await
            })
            .await;
        result.map_err(|e| {
            if *e == AncestryError::Unavailable {
                self.metrics
                    .ancestry_lookups
                    .with_label_values(&["error"])
                    .inc();
            }
            *e
        })
    }

    async fn fetch(
        &self,
        item: &Item,
        parent: &HeaderValue,
    ) -> Result<Arc<[Box<str>]>, AncestryError> {
        let token = parent
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AncestryError::Unavailable)?;
        let path = format!(
            "/2.0/{}s/{}?fields=path_collection,parent",
            item.kind.as_str(),
            item.id
        );
        let (status, json) = self
            .client
            .get_json(&self.api, &path, token)
            .await
            .map_err(|_| AncestryError::Unavailable)?;
        match status {
            200 => {}
            401 | 403 | 404 | 410 => return Err(AncestryError::NotVisible),
            _ => return Err(AncestryError::Unavailable),
        }
        // The answer must be about the item asked for.
        if json.get("id").and_then(crate::json::id_of).as_deref() != Some(&*item.id) {
            return Err(AncestryError::Unavailable);
        }
        let mut ids: Vec<Box<str>> = json
            .pointer("/path_collection/entries")
            .and_then(|e| e.as_array())
            .ok_or(AncestryError::Unavailable)?
            .iter()
            .filter_map(|e| e.get("id").and_then(crate::json::id_of))
            .map(Into::into)
            .collect();
        if let Some(p) = json.pointer("/parent/id").and_then(crate::json::id_of)
            && !ids.iter().any(|i| **i == *p)
        {
            ids.push(p.into());
        }
        Ok(ids.into())
    }
}
