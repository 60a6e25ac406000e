//! The JSON shapes of items: Box's standard representation, the `fields`
//! selection, item collections with paging and sorting, `permissions`, and
//! representations with absolute URLs on this server.
//!
//! With `?fields=a,b` Box returns only `type`, `id` and `etag` besides the
//! fields asked for, and applies the same selection to the entries of an
//! `item_collection`; unknown field names are ignored. Without `fields` it
//! returns the standard representation, which for a file includes its
//! `shared_link` (that is why the gateway must redact answers, not only
//! the `fields` it forwards).

use serde_json::{Map, Value, json};

use super::tree::{Item, Kind, ROOT, Tree};

/// Where clients are told to call back: the API, upload and download hosts.
/// Box uses three hosts; the sample API serves all three paths itself, by
/// default at the scheme and `Host` the request came to.
#[derive(Clone, Debug)]
pub struct Origins {
    pub api: String,
    pub upload: String,
    pub download: String,
}

/// How one answer is to be shaped.
pub struct View<'a> {
    pub origins: &'a Origins,
    /// The `fields` query parameter, split; `None` for the standard shape.
    pub fields: Option<Vec<String>>,
    /// The `X-Rep-Hints` header, when representations are asked for.
    pub rep_hints: Option<&'a str>,
}

/// `sort` of a folder listing (Box: id, name, date, size); folders always
/// come before files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    Id,
    Name,
    Date,
    Size,
}

/// Paging and order of a listing.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
    pub sort: Sort,
    pub descending: bool,
    /// Marker paging (`usemarker=true`): the answer has `next_marker`.
    pub marker: bool,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            offset: 0,
            limit: 100,
            sort: Sort::Name,
            descending: false,
            marker: false,
        }
    }
}

const FILE_STANDARD: &[&str] = &[
    "type",
    "id",
    "etag",
    "sequence_id",
    "name",
    "sha1",
    "file_version",
    "description",
    "size",
    "path_collection",
    "created_at",
    "modified_at",
    "trashed_at",
    "purged_at",
    "content_created_at",
    "content_modified_at",
    "created_by",
    "modified_by",
    "owned_by",
    "shared_link",
    "parent",
    "item_status",
];

const FOLDER_STANDARD: &[&str] = &[
    "type",
    "id",
    "etag",
    "sequence_id",
    "name",
    "description",
    "size",
    "path_collection",
    "created_at",
    "modified_at",
    "trashed_at",
    "purged_at",
    "content_created_at",
    "content_modified_at",
    "created_by",
    "modified_by",
    "owned_by",
    "shared_link",
    "folder_upload_email",
    "parent",
    "item_status",
    "item_collection",
];

/// What Box returns whatever `fields` says.
const ALWAYS: &[&str] = &["type", "id", "etag"];

/// The seeded file with an open shared link, so that answers show what a
/// gateway must redact.
pub const SHARED_FILE: &str = "1001";

impl Tree {
    /// One item as `view` asks; `page` shapes a folder's `item_collection`.
    pub fn item_json(&self, id: &str, item: &Item, view: &View, page: &Page) -> Value {
        let mut out = Map::new();
        let standard = match item.kind {
            Kind::File => FILE_STANDARD,
            Kind::Folder => FOLDER_STANDARD,
        };
        let names: Vec<&str> = match &view.fields {
            None => standard.to_vec(),
            Some(f) => ALWAYS
                .iter()
                .copied()
                .chain(f.iter().map(String::as_str))
                .collect(),
        };
        for name in names {
            if out.contains_key(name) {
                continue;
            }
            if let Some(v) = self.field(id, item, name, view, page) {
                out.insert(name.to_owned(), v);
            }
        }
        Value::Object(out)
    }

    fn field(&self, id: &str, item: &Item, name: &str, view: &View, page: &Page) -> Option<Value> {
        let file = item.kind == Kind::File;
        let o = view.origins;
        Some(match name {
            "type" => json!(item.kind_str()),
            "id" => json!(id),
            "name" => json!(item.name),
            "etag" | "sequence_id" if id == ROOT => Value::Null,
            "etag" | "sequence_id" => json!(item.revision.to_string()),
            "sha1" if file => json!(item.sha1),
            "file_version" if file => self.file_version(id, item),
            "version_number" if file => json!((item.version + 1).to_string()),
            "extension" if file => json!(extension(&item.name)),
            "description" => json!(""),
            "size" => json!(self.size_of(id, item)),
            "path_collection" => self.path_collection(item),
            "parent" => item
                .parent
                .as_deref()
                .and_then(|p| Some((p, self.item(p)?)))
                .map_or(Value::Null, |(pid, p)| self.mini(pid, p)),
            "created_at" | "content_created_at" => json!(iso8601(item.created_at)),
            "modified_at" | "content_modified_at" => json!(iso8601(item.modified_at)),
            "trashed_at" | "purged_at" | "folder_upload_email" | "lock" => Value::Null,
            "created_by" | "modified_by" | "owned_by" => super::routes::user_json(super::DEMO_USER),
            "item_status" => json!("active"),
            "shared_link" => shared_link(id, item, o),
            "permissions" => permissions(item.kind),
            "has_collaborations" | "is_externally_owned" => json!(false),
            "is_download_available" if file => json!(true),
            "authenticated_download_url" if file => {
                json!(format!("{}/api/2.0/files/{id}/content", o.download))
            }
            "expiring_embed_link" if file => {
                json!({"url": format!("{}/preview/expiring_embed/{id}", o.api)})
            }
            "representations" if file => self.representations(id, item, view),
            "watermark_info" => json!({"is_watermarked": false}),
            "allowed_shared_link_access_levels" => json!(["open", "company", "collaborators"]),
            "comment_count" if file => json!(0),
            "tags" => json!([]),
            "item_collection" if !file => {
                // Entries take the same `fields`, minus nested collections.
                let entries = View {
                    origins: o,
                    fields: view.fields.as_ref().map(|f| {
                        f.iter()
                            .filter(|n| *n != "item_collection")
                            .cloned()
                            .collect()
                    }),
                    rep_hints: view.rep_hints,
                };
                self.listing(id, &entries, page)
            }
            _ => return None,
        })
    }

    /// The item with the fields every nested reference carries.
    pub fn mini(&self, id: &str, item: &Item) -> Value {
        let (etag, seq) = if id == ROOT {
            (Value::Null, Value::Null)
        } else {
            let r = Value::String(item.revision.to_string());
            (r.clone(), r)
        };
        let mut v = json!({
            "type": item.kind_str(), "id": id, "name": item.name,
            "etag": etag, "sequence_id": seq,
        });
        if item.kind == Kind::File {
            v["sha1"] = json!(item.sha1);
            v["file_version"] = self.file_version(id, item);
        }
        v
    }

    fn file_version(&self, id: &str, item: &Item) -> Value {
        json!({"type": "file_version", "id": version_id(id, item), "sha1": item.sha1})
    }

    /// Ancestors, root first, as Box's `path_collection`.
    fn path_collection(&self, item: &Item) -> Value {
        let entries: Vec<Value> = self
            .ancestors(item)
            .into_iter()
            .map(|(pid, p)| self.mini(pid, p))
            .collect();
        json!({"total_count": entries.len(), "entries": entries})
    }

    /// A folder's children, sorted and paged, shaped by `view` (mini items
    /// when no `fields` were asked).
    pub fn listing(&self, id: &str, view: &View, page: &Page) -> Value {
        let mut kids = self.children(id);
        kids.sort_by(|a, b| {
            let key = match page.sort {
                Sort::Name => a.1.name.to_lowercase().cmp(&b.1.name.to_lowercase()),
                Sort::Date => a.1.modified_at.cmp(&b.1.modified_at),
                Sort::Size => self.size_of(a.0, a.1).cmp(&self.size_of(b.0, b.1)),
                Sort::Id => numeric(a.0).cmp(&numeric(b.0)),
            };
            let key = if page.descending { key.reverse() } else { key };
            a.1.kind.cmp(&b.1.kind).then(key)
        });
        let entries: Vec<Value> = kids
            .iter()
            .skip(page.offset)
            .take(page.limit)
            .map(|(cid, c)| match view.fields {
                Some(_) => self.item_json(cid, c, view, &Page::default()),
                None => self.mini(cid, c),
            })
            .collect();
        let order = json!([{
            "by": match page.sort { Sort::Id => "id", Sort::Name => "name", Sort::Date => "date", Sort::Size => "size" },
            "direction": if page.descending { "DESC" } else { "ASC" },
        }]);
        if page.marker {
            let next = page.offset + entries.len();
            let next_marker = if next < kids.len() {
                json!(format!("m{next}"))
            } else {
                Value::Null
            };
            return json!({"entries": entries, "limit": page.limit, "next_marker": next_marker, "order": order});
        }
        json!({
            "total_count": kids.len(), "entries": entries,
            "offset": page.offset, "limit": page.limit, "order": order,
        })
    }

    fn size_of(&self, id: &str, item: &Item) -> u64 {
        match item.kind {
            Kind::File => item.size,
            Kind::Folder => self.subtree_size(id),
        }
    }

    /// Box's search: items whose name holds `query` (case-insensitive),
    /// below any of `ancestors` when given (the folders themselves are not
    /// results), optionally of one `type`.
    pub fn search(
        &self,
        query: &str,
        ancestors: &[String],
        kind: Option<Kind>,
        view: &View,
        page: &Page,
    ) -> Value {
        let needle = query.to_lowercase();
        let mut hits: Vec<(&String, &Item)> = self
            .all()
            .filter(|(id, i)| id.as_str() != ROOT && i.name.to_lowercase().contains(&needle))
            .filter(|(_, i)| kind.is_none_or(|k| i.kind == k))
            .filter(|(id, _)| {
                ancestors.is_empty() || ancestors.iter().any(|a| a != *id && self.is_within(id, a))
            })
            .collect();
        hits.sort_by(|a, b| (a.1.kind, &a.1.name).cmp(&(b.1.kind, &b.1.name)));
        let entries: Vec<Value> = hits
            .iter()
            .skip(page.offset)
            .take(page.limit)
            .map(|(id, i)| self.item_json(id, i, view, &Page::default()))
            .collect();
        json!({"total_count": hits.len(), "entries": entries, "offset": page.offset, "limit": page.limit})
    }

    /// Recent items: every file, most recently changed first.
    pub fn recents(&self, view: &View) -> Value {
        let mut files: Vec<(&String, &Item)> =
            self.all().filter(|(_, i)| i.kind == Kind::File).collect();
        files.sort_by_key(|f| std::cmp::Reverse(f.1.modified_at));
        let entries: Vec<Value> = files
            .iter()
            .map(|(id, i)| {
                json!({
                    "type": "recent_item", "interaction_type": "item_preview",
                    "interacted_at": iso8601(i.modified_at),
                    "item": self.item_json(id, i, view, &Page::default()),
                })
            })
            .collect();
        json!({"entries": entries, "limit": 100, "next_marker": null})
    }

    /// The `representations` field: for each `[...]` group of the hints,
    /// the first alternative this server can make (png, jpg, text, pdf).
    fn representations(&self, id: &str, item: &Item, view: &View) -> Value {
        let hints = view
            .rep_hints
            .unwrap_or("[png?dimensions=1024x1024][jpg?dimensions=320x320][text][pdf]");
        let mut entries = Vec::new();
        for group in hints.split(['[', ']']).filter(|g| !g.trim().is_empty()) {
            let chosen = group.split(',').find_map(|alt| {
                let (kind, params) = alt.trim().split_once('?').unwrap_or((alt.trim(), ""));
                let dims = params
                    .split('&')
                    .find_map(|p| p.strip_prefix("dimensions="))
                    .unwrap_or("1024x1024");
                Rep::new(kind, dims, &item.name)
            });
            if let Some(rep) = chosen {
                entries.push(rep.entry(id, &version_id(id, item), view.origins));
            }
        }
        json!({"entries": entries})
    }
}

/// One representation this server can produce.
pub struct Rep {
    /// `png`, `jpg`, `text` or `pdf`.
    pub kind: &'static str,
    pub dimensions: Option<String>,
}

impl Rep {
    fn new(kind: &str, dims: &str, name: &str) -> Option<Rep> {
        let ext = extension(name);
        let sized = |k| {
            let ok = dims.split_once('x').is_some_and(|(w, h)| {
                !w.is_empty()
                    && !h.is_empty()
                    && w.len() <= 4
                    && h.len() <= 4
                    && (w.bytes().chain(h.bytes())).all(|b| b.is_ascii_digit())
            });
            ok.then(|| Rep {
                kind: k,
                dimensions: Some(dims.to_owned()),
            })
        };
        match kind {
            "png" => sized("png"),
            "jpg" => sized("jpg"),
            "text" if matches!(ext.as_str(), "txt" | "md" | "csv" | "json") => Some(Rep {
                kind: "text",
                dimensions: None,
            }),
            "pdf" if ext == "pdf" => Some(Rep {
                kind: "pdf",
                dimensions: None,
            }),
            _ => None,
        }
    }

    /// Parses a representation name from a URL (`png_paged_32x32`,
    /// `jpg_1024x1024`, `text`, `pdf`).
    pub fn from_name(name: &str) -> Option<Rep> {
        let (kind, dims) = match name.split_once('_') {
            Some(("png", rest)) => ("png", rest.strip_prefix("paged_")?),
            Some(("jpg", rest)) => ("jpg", rest),
            None if name == "text" || name == "pdf" => {
                return Some(Rep {
                    kind: if name == "text" { "text" } else { "pdf" },
                    dimensions: None,
                });
            }
            _ => return None,
        };
        Rep::new(kind, dims, "x.png")
    }

    pub fn name(&self) -> String {
        match (self.kind, &self.dimensions) {
            ("png", Some(d)) => format!("png_paged_{d}"),
            (k, Some(d)) => format!("{k}_{d}"),
            (k, None) => k.to_owned(),
        }
    }

    /// Whether the asset path names a page this representation has: paged
    /// ones (png) have page `1.png` only here; the others have the empty path.
    pub fn has_asset(&self, asset: &str) -> bool {
        match self.kind {
            "png" => asset == "1.png",
            _ => asset.is_empty(),
        }
    }

    pub fn entry(&self, id: &str, version: &str, o: &Origins) -> Value {
        let name = self.name();
        let path = format!("2.0/internal_files/{id}/versions/{version}/representations/{name}");
        let properties = match (&self.dimensions, self.kind) {
            (Some(d), k) => {
                json!({"dimensions": d, "paged": (k == "png").to_string(), "thumb": "false"})
            }
            (None, _) => json!({}),
        };
        json!({
            "representation": self.kind,
            "properties": properties,
            "info": {"url": format!("{}/{path}", o.api)},
            "status": {"state": "success"},
            "content": {"url_template": format!("{}/api/{path}/content/{{+asset_path}}", o.download)},
        })
    }
}

/// Box's file version ids are their own; here `v<file id>` and a counter.
pub fn version_id(id: &str, item: &Item) -> String {
    match item.version {
        0 => format!("v{id}"),
        n => format!("v{id}-{n}"),
    }
}

fn extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default()
}

fn numeric(id: &str) -> (usize, &str) {
    (id.len(), id)
}

fn shared_link(id: &str, item: &Item, o: &Origins) -> Value {
    if id != SHARED_FILE || item.kind != Kind::File {
        return Value::Null;
    }
    json!({
        "url": format!("{}/s/sample{id}", o.api),
        "download_url": format!("{}/shared/static/sample{id}.txt", o.download),
        "vanity_url": null, "effective_access": "open", "effective_permission": "can_download",
        "is_password_enabled": false, "access": "open", "download_count": 0, "preview_count": 0,
        "permissions": {"can_download": true, "can_preview": true, "can_edit": false},
    })
}

/// What the parent user may do: everything (the sample user owns the tree).
/// Behind the gateway these describe the parent, not the downscoped token.
fn permissions(kind: Kind) -> Value {
    let mut p = json!({
        "can_download": true, "can_upload": true, "can_rename": true, "can_delete": true,
        "can_share": true, "can_invite_collaborator": true, "can_set_share_access": true,
    });
    if kind == Kind::File {
        for k in [
            "can_preview",
            "can_comment",
            "can_annotate",
            "can_view_annotations_all",
            "can_view_annotations_self",
        ] {
            p[k] = json!(true);
        }
    }
    p
}

/// `2026-01-02T03:04:05Z` from unix seconds (proleptic Gregorian, UTC).
pub fn iso8601(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(iso8601(951_827_696), "2000-02-29T12:34:56Z");
    }

    #[test]
    fn representation_names_round_trip() {
        for name in ["png_paged_1024x1024", "jpg_32x32", "text", "pdf"] {
            assert_eq!(
                Rep::from_name(name).map(|r| r.name()).as_deref(),
                Some(name)
            );
        }
        for bad in ["png_1024x1024", "jpg_axb", "gif_1x1", "jpg_12345x1"] {
            assert!(Rep::from_name(bad).is_none(), "{bad}");
        }
    }
}
