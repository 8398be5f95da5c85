//! What handlers read off a request, shared by every router: the query
//! pairs, the media type, the public base URL and the layer a path names.
//! It sits below the routers (features, tiles, events, api) and imports
//! none of them.

use std::sync::Arc;

use axum::http::{header, HeaderMap};

use crate::{error::AppError, layers::LayerDef, AppState};

/// Whether a request's `Host` (name or address, with or without a port) is
/// one this server answers for: the address it is bound to (any address of
/// the machine when bound to all of them: no DNS name can rebind to an
/// address literal), a loopback address, `localhost`, or a name in
/// `allowed` (given with or without port).
pub fn host_allowed(host: &str, allowed: &[String], bind: std::net::SocketAddr) -> bool {
    let address_ok =
        |ip: std::net::IpAddr| ip.is_loopback() || bind.ip().is_unspecified() || ip == bind.ip();
    // Compared without case and without allocating: this runs on every
    // request, tiles included. `allowed` is lower-cased by the settings.
    let host = host.trim();
    let known = |name: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(name));
    if known(host) {
        return true;
    }
    // Split a port off: `[v6]:port`, `name:port`, `v4:port`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) if tail.is_empty() || port(tail.strip_prefix(':')) => {
                return v6
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok_and(|ip| address_ok(ip.into()));
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, p)) if port(Some(p)) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| address_ok(ip.into()))
        || known(name)
}

fn port(p: Option<&str>) -> bool {
    p.is_some_and(|p| p.parse::<u16>().is_ok())
}

/// The scheme and authority clients reach this server at: the configured
/// public URL, else the request's `Host` (and `X-Forwarded-Proto`).
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let plausible = |s: &&str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(plausible)
        .map(str::to_owned)
        .unwrap_or_else(|| state.settings.bind.to_string());
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// The pairs of a raw query string, decoded.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The request's media type, lower-cased, without parameters.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// The layer a path names, or a 404 naming it.
pub fn layer_or_404(state: &AppState, name: &str) -> Result<Arc<LayerDef>, AppError> {
    state
        .catalog
        .get(name)
        .cloned()
        .ok_or_else(|| AppError::NotFound {
            what: format!("collection `{name}`"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_the_bound_address_loopback_or_allowed_names() {
        let lo: std::net::SocketAddr = "127.0.0.1:8080".parse().expect("address");
        let all: std::net::SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let allowed = vec!["onemap.luozhuang.gov.cn".to_owned()];
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:8080",
            "[::1]:8080",
            "onemap.luozhuang.gov.cn",
            "onemap.luozhuang.gov.cn:443",
        ] {
            assert!(host_allowed(ok, &allowed, lo), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.1.2.3:8080",
            "localhost:99999",
            "[::1",
            "onemap.luozhuang.gov.cn.evil.example",
            "",
        ] {
            assert!(!host_allowed(bad, &allowed, lo), "{bad}");
        }
        // Bound to every address: any address literal is this machine's.
        assert!(host_allowed("10.1.2.3:8080", &allowed, all));
        assert!(!host_allowed("evil.example", &allowed, all));
    }
}

/// A request field that is wrong: which one, and why. The routers' error
/// types take it with `?` (each has a `From`), so reading a JSON body or a
/// query string is written once for dispatch, planning and replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {detail}")]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(field: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            detail: detail.into(),
        }
    }
}

/// A JSON object body.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, FieldError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(FieldError::new("body", "must be a JSON object")),
        Err(e) => Err(FieldError::new("body", format!("is not valid JSON: {e}"))),
    }
}

/// Refuse members the request does not define (a typo must not be lost).
pub fn only_fields(
    body: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
) -> Result<(), FieldError> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(FieldError::new(
            k,
            format!(
                "is not a field of this request (fields: {})",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// A query flag's value: `true`/`1` or `false`/`0`.
pub fn flag(key: &str, value: &str) -> Result<bool, FieldError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        v => Err(FieldError::new(
            key,
            format!(
                "must be true or false, got `{}`",
                v.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// A query string whose parameters are all known and none given twice.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, FieldError> {
        let pairs = query_pairs(raw);
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !known.contains(&k.as_str()) {
                return Err(FieldError::new(
                    k,
                    format!("is not a parameter here (parameters: {})", known.join(", ")),
                ));
            }
            if pairs[..i].iter().any(|(j, _)| j == k) {
                return Err(FieldError::new(k, "is given twice"));
            }
        }
        Ok(Self(pairs))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A finite number.
    pub fn number(&self, key: &str) -> Result<Option<f64>, FieldError> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| FieldError::new(key, format!("must be a number, got `{v}`")))
            })
            .transpose()
    }

    pub fn required_number(&self, key: &str) -> Result<f64, FieldError> {
        self.number(key)?
            .ok_or_else(|| FieldError::new(key, "is required"))
    }

    /// A whole number in `range`.
    pub fn count(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, FieldError> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        FieldError::new(
                            key,
                            format!(
                                "must be a whole number from {} to {}, got `{v}`",
                                range.start(),
                                range.end()
                            ),
                        )
                    })
            })
            .transpose()
    }

    /// `true`/`1` or `false`/`0`; absent is false.
    pub fn flag(&self, key: &str) -> Result<bool, FieldError> {
        self.get(key).map_or(Ok(false), |v| flag(key, v))
    }

    /// The datum of the request's coordinates (`crs`), WGS84 when absent.
    pub fn crs(&self) -> Result<crate::crs::Crs, FieldError> {
        match self.get("crs") {
            None => Ok(crate::crs::Crs::Wgs84),
            Some(v) => v
                .parse::<crate::crs::Crs>()
                .map_err(|e| FieldError::new("crs", e.to_string())),
        }
    }
}

#[cfg(test)]
mod field_tests {
    use super::*;

    #[test]
    fn params_name_the_unknown_the_doubled_and_the_malformed() {
        let e = Params::parse(Some("a=1&b=2"), &["a"]).err();
        assert_eq!(e.map(|e| e.field), Some("b".to_owned()));
        let e = Params::parse(Some("a=1&a=2"), &["a"]).err();
        assert_eq!(e.map(|e| e.detail), Some("is given twice".to_owned()));
        let q = Params::parse(Some("n=NaN&k=7&f=yes"), &["n", "k", "f"]).expect("known");
        assert!(q.number("n").is_err());
        assert_eq!(q.count("k", 1..=10).ok(), Some(Some(7)));
        assert!(q.count("k", 1..=5).is_err());
        assert_eq!(q.flag("f").err().map(|e| e.field), Some("f".to_owned()));
        assert!(json_object(b"[1]").is_err());
        let body = json_object(br#"{"x": 1}"#).expect("object");
        assert_eq!(
            only_fields(&body, &["y"]).err().map(|e| e.field),
            Some("x".to_owned())
        );
    }
}
