//! The exchange parameters the gateway implements, and `box_shared_link`.
//!
//! Box's token endpoint takes `box_shared_link` (the full URL of a file or
//! folder shared link) in place of `resource`: the token is restricted to
//! the item the link opens. The gateway resolves the link with the parent
//! (`GET /2.0/shared_items` with `BoxApi: shared_link=<url>`), restricts
//! the token to that item, seals the link into the token, and sends the
//! same `BoxApi` header on every request it forwards for that token.
//!
//! Every other parameter is checked against one list: a parameter the
//! gateway does not implement (`actor_token`, `audience`, ...) is
//! `invalid_request`, never silently ignored.

use http::HeaderValue;
use serde_json::Value;

use crate::error::OAuthError;
use crate::gateway::Gateway;
use crate::policy::ItemKind;

/// Parameters a token exchange may carry. `client_id` and `client_secret`
/// authenticate the client (RFC 6749 2.3.1) on any token request; a
/// downscope needs no client authentication at Box and they name no
/// capability, so they are accepted and not used.
const KNOWN: &[&str] = &[
    "grant_type",
    "subject_token",
    "subject_token_type",
    "scope",
    "resource",
    "box_shared_link",
    "requested_token_type",
    "client_id",
    "client_secret",
];

/// Refuses a parameter the gateway does not implement, naming it, and a
/// `requested_token_type` other than an access token (the only kind minted).
pub fn check_parameters<'a>(
    names: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), OAuthError> {
    for (name, value) in names {
        if !KNOWN.contains(&name) {
            // Names are echoed only when short and plain: never a secret.
            let shown = if name.len() <= 40
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                name
            } else {
                "(unreadable)"
            };
            return Err(OAuthError::invalid_request(format!(
                "parameter `{shown}` is not supported by this gateway"
            )));
        }
        if name == "requested_token_type" && value != super::ACCESS_TOKEN_TYPE {
            return Err(OAuthError::invalid_request(format!(
                "`requested_token_type` must be {}",
                super::ACCESS_TOKEN_TYPE
            )));
        }
    }
    Ok(())
}

/// The `BoxApi` value for a shared link, once the link is known to be plain:
/// an absolute `http(s)` URL of unreserved characters, `/` and `:` only, so
/// it can neither carry a second `BoxApi` parameter (`&shared_link_password=`)
/// nor break the header.
pub fn box_api_value(link: &str) -> Option<HeaderValue> {
    let plain = link.len() <= 1024
        && link
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/:".contains(&b));
    let uri: http::Uri = link.parse().ok()?;
    if !plain
        || !matches!(uri.scheme_str(), Some("http" | "https"))
        || uri.authority().is_none()
        || uri.path().len() <= 1
    {
        return None;
    }
    HeaderValue::from_str(&format!("shared_link={link}")).ok()
}

/// Checks the link's form only (for the fuzz entry point and early refusal).
pub fn parse(link: &str) -> Result<HeaderValue, OAuthError> {
    box_api_value(link).ok_or_else(|| {
        OAuthError::invalid_resource(
            "`box_shared_link` must be the full http(s) URL of a Box shared link",
        )
    })
}

/// Resolves the link with the parent: the item it opens, as
/// `(kind, id, restricted_to object)`. Refuses a link that opens anything
/// but a file or folder, and a password-protected one (the gateway holds no
/// password to send, and would not keep one in a token).
pub async fn resolve(
    gw: &Gateway,
    parent: &str,
    box_api: &HeaderValue,
) -> Result<(ItemKind, String, Value), OAuthError> {
    let (status, json) = gw
        .client
        .get_json_with(
            &gw.config.upstream.api,
            "/2.0/shared_items",
            parent,
            (crate::proxy::BOX_API, box_api.clone()),
        )
        .await
        .map_err(super::unavailable)?;
    match status {
        200 => {}
        401 => {
            return Err(OAuthError::invalid_grant(
                "the subject token is not valid at the upstream",
            ));
        }
        400..=499 => {
            return Err(OAuthError::invalid_resource(
                "the shared link does not exist, needs a password, or the subject token cannot open it",
            ));
        }
        _ => {
            return Err(OAuthError::unavailable(
                "the upstream could not resolve the shared link",
            ));
        }
    }
    let kind = json
        .get("type")
        .and_then(Value::as_str)
        .and_then(ItemKind::parse)
        .ok_or_else(|| {
            OAuthError::invalid_resource("the shared link opens neither a file nor a folder")
        })?;
    if json
        .pointer("/shared_link/is_password_enabled")
        .and_then(Value::as_bool)
        != Some(false)
    {
        return Err(OAuthError::invalid_resource(
            "the shared link is password-protected (or does not say it is not)",
        ));
    }
    let id = json
        .get("id")
        .and_then(crate::json::id_of)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .ok_or_else(|| OAuthError::invalid_resource("the upstream answered without a plain id"))?;
    let object = super::restricted_object(kind, &json);
    Ok((kind, id, object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_unimplemented_parameters_are_named() {
        let ok = [
            ("grant_type", "x"),
            ("subject_token", "t"),
            ("scope", "item_read"),
            ("requested_token_type", super::super::ACCESS_TOKEN_TYPE),
        ];
        assert!(check_parameters(ok.into_iter()).is_ok());
        for bad in [
            ("actor_token", "a"),
            (
                "actor_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("audience", "x"),
            ("box_subject_type", "user"),
            ("scopes", "item_read"),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            ),
        ] {
            let e = check_parameters([bad].into_iter()).unwrap_err();
            assert_eq!(e.code, "invalid_request", "{bad:?}");
        }
    }

    #[test]
    fn only_plain_shared_link_urls_make_a_header() {
        assert_eq!(
            box_api_value("https://app.box.com/s/abc123").unwrap(),
            "shared_link=https://app.box.com/s/abc123"
        );
        for bad in [
            "https://app.box.com/s/abc&shared_link_password=x",
            "https://app.box.com/s/a b",
            "https://app.box.com/s/a\r\nX: y",
            "https://app.box.com/s/a?x=1",
            "ftp://app.box.com/s/a",
            "/s/abc",
            "https://app.box.com/",
        ] {
            assert!(box_api_value(bad).is_none(), "{bad}");
        }
    }
}
