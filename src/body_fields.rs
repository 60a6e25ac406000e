//! Which scope each top-level field of a route's JSON body needs.
//!
//! Box's update calls carry many capabilities in one body (`PUT
//! /2.0/files/{id}`: rename, describe, move, share, lock, tag, ...), so the
//! route's scope alone cannot say what a request does. A route with a JSON
//! body lists its fields in the policy (`fields = { name = "item_rename",
//! shared_link = "item_share", parent = "route", ... }`): `"route"` means
//! the route's own scope suffices, a scope name means the token must also
//! hold that scope, and the key `"*"` stands for every field not named
//! (used where the keys are data, such as a metadata instance's template
//! fields). For a downscoped token a field the route does not list is
//! refused: the world is closed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::scope::{ScopeSet, ScopeTable};

/// What one body field needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRule {
    /// The route's own scope.
    Route,
    /// This scope too (after implication); `name` for the 403 challenge.
    Scope { set: ScopeSet, name: String },
}

/// The compiled `fields` table of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFields {
    named: Vec<(String, FieldRule)>,
    /// The `"*"` entry: every field not named, and bodies that are not objects.
    other: Option<FieldRule>,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRefusal {
    /// The body is JSON but not an object, and the route takes any field only by name.
    NotAnObject,
    /// A field the route does not list.
    Unlisted(String),
    /// A listed field whose scope the token lacks.
    NeedsScope(String),
}

impl BodyFields {
    /// Compiles a `fields` table; each problem is `(key, message)`.
    pub fn compile(
        raw: &BTreeMap<String, String>,
        table: &ScopeTable,
    ) -> Result<BodyFields, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut named = Vec::new();
        let mut other = None;
        for (field, value) in raw {
            let rule = if value == "route" {
                FieldRule::Route
            } else {
                match table.exact([value.as_str()]) {
                    Ok(set) => FieldRule::Scope {
                        set,
                        name: value.clone(),
                    },
                    Err(e) => {
                        problems.push((
                            field.clone(),
                            format!("`{value}` is not \"route\" or a known scope ({e})"),
                        ));
                        continue;
                    }
                }
            };
            if field == "*" {
                other = Some(rule);
            } else if field.is_empty() || field.contains(['.', '"']) {
                problems.push((
                    field.clone(),
                    "a field is a top-level JSON key without `.` or `\"`".into(),
                ));
            } else {
                named.push((field.clone(), rule));
            }
        }
        if problems.is_empty() {
            Ok(BodyFields { named, other })
        } else {
            Err(problems)
        }
    }

    /// Every top-level field of `body` is listed and its scope held. An
    /// empty body (`Null`) holds no field.
    pub fn check(&self, held: ScopeSet, body: &Value) -> Result<(), FieldRefusal> {
        let allowed = |rule: &FieldRule| match rule {
            FieldRule::Route => Ok(()),
            FieldRule::Scope { set, name } => {
                if held.intersects(*set) {
                    Ok(())
                } else {
                    Err(FieldRefusal::NeedsScope(name.clone()))
                }
            }
        };
        let map = match body {
            Value::Null => return Ok(()),
            Value::Object(m) => m,
            _ => {
                return match &self.other {
                    Some(rule) => allowed(rule),
                    None => Err(FieldRefusal::NotAnObject),
                };
            }
        };
        for key in map.keys() {
            match self.named.iter().find(|(f, _)| f == key) {
                Some((_, rule)) => allowed(rule)?,
                None => match &self.other {
                    Some(rule) => allowed(rule)?,
                    None => return Err(FieldRefusal::Unlisted(key.clone())),
                },
            }
        }
        Ok(())
    }

    /// The table as written, for `check-config`: `field=rule` pairs.
    pub fn describe(&self) -> String {
        let rule = |r: &FieldRule| match r {
            FieldRule::Route => "route".to_string(),
            FieldRule::Scope { name, .. } => name.clone(),
        };
        let mut parts: Vec<String> = self
            .named
            .iter()
            .map(|(f, r)| format!("{f}={}", rule(r)))
            .collect();
        if let Some(r) = &self.other {
            parts.push(format!("*={}", rule(r)));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(pairs: &[(&str, &str)]) -> BodyFields {
        let t = ScopeTable::new(&[], &[]).unwrap();
        let raw = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BodyFields::compile(&raw, &t).unwrap()
    }

    #[test]
    fn each_field_needs_its_scope_and_unlisted_fields_are_refused() {
        let t = ScopeTable::new(&[], &[]).unwrap();
        let f = fields(&[
            ("name", "item_rename"),
            ("shared_link", "item_share"),
            ("parent", "route"),
        ]);
        let rename = t.exact(["item_rename"]).unwrap();
        let share = t.exact(["item_share"]).unwrap();
        assert_eq!(f.check(rename, &json!({"name": "a"})), Ok(()));
        assert_eq!(f.check(rename, &json!({"parent": {"id": "1"}})), Ok(()));
        assert_eq!(f.check(rename, &Value::Null), Ok(()));
        assert_eq!(
            f.check(rename, &json!({"name": "a", "shared_link": {}})),
            Err(FieldRefusal::NeedsScope("item_share".into()))
        );
        assert_eq!(f.check(share, &json!({"shared_link": null})), Ok(()));
        assert_eq!(
            f.check(share, &json!({"name": "a"})),
            Err(FieldRefusal::NeedsScope("item_rename".into()))
        );
        assert_eq!(
            f.check(rename, &json!({"lock": {}})),
            Err(FieldRefusal::Unlisted("lock".into()))
        );
        assert_eq!(f.check(rename, &json!([1])), Err(FieldRefusal::NotAnObject));
        let any = fields(&[("*", "route")]);
        assert_eq!(any.check(rename, &json!([{"op": "add"}])), Ok(()));
        assert_eq!(any.check(rename, &json!({"anything": 1})), Ok(()));
    }

    #[test]
    fn unknown_scopes_and_dotted_fields_are_config_errors() {
        let t = ScopeTable::new(&[], &[]).unwrap();
        let raw = [("name", "item_renam"), ("a.b", "route"), ("ok", "route")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let errs = BodyFields::compile(&raw, &t).unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a.b", "name"]);
    }
}
