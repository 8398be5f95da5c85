//! Strong HTTP entity tags (RFC 9110 §8.8.3) from content, and the
//! `If-None-Match` test every cached answer makes.

use axum::http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

/// A strong ETag: the first 96 bits of the SHA-256 of `bytes`, quoted.
pub fn strong(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The tag as a header value (a tag this module made is always valid).
pub fn header(tag: &str) -> HeaderValue {
    HeaderValue::from_str(tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether the request's `If-None-Match` names `tag` (or `*`): the answer
/// is then 304. The comparison is the weak one RFC 9110 §13.1.2 asks for,
/// so `W/"…"` from a proxy matches too.
pub fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_wildcards_and_weak_tags_match() {
        let tag = strong(b"tile");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(v).expect("value"),
            );
            h
        };
        assert!(none_match(&with(&tag), &tag));
        assert!(none_match(&with(&format!("\"other\", {tag}")), &tag));
        assert!(none_match(&with(&format!("W/{tag}")), &tag));
        assert!(none_match(&with("*"), &tag));
        assert!(!none_match(&with("\"other\""), &tag));
        assert!(!none_match(&HeaderMap::new(), &tag));
    }
}
