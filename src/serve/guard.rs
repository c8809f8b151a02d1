//! Who may talk to `d1ops serve`, checked before a request reaches a database.
//!
//! A page open in the developer's browser can send requests to a local port. Without these
//! checks such a page could run SQL through `serve` (on production too, when the server was
//! started with `--allow-production-writes`). In order, a request is refused:
//!
//! 1. with 403 when its `Host` is not the listen address (`127.0.0.1:PORT` or
//!    `localhost:PORT` for a loopback listen): a page on a domain that re-resolves to
//!    127.0.0.1 (DNS rebinding) still sends its own name as `Host`;
//! 2. with 403 when it carries an `Origin` (browsers send one on every cross-site `POST`)
//!    that is neither the listen address nor in the allow-list (`--allow-origin`); an opaque
//!    `null` origin is never accepted. An allowed origin gets CORS answers (preflight
//!    included), so a trusted web tool can use the API;
//! 3. with 401 when the server has a bearer token (`D1OPS_SERVE_TOKEN`) and the request does
//!    not present it as `Authorization: Bearer …` (compared in constant time; only the
//!    token's SHA-256 is kept, and it is never logged or echoed);
//! 4. with 415 when the body is not declared `Content-Type: application/json` (what a page
//!    can send cross-site without a CORS preflight is `text/plain`, form data or nothing);
//! 5. with 413 when the body is larger than [`MAX_BODY`].
//!
//! Every refusal is answered in Cloudflare's envelope ([`super::d1::failure`]).
//!
//! This file owns the checks and the middleware; `guard_names` parses origins and the names
//! the listen address answers to, `guard_body` reads a body within its limit and drains a
//! refused one.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{answer, d1};

#[path = "guard_body.rs"]
mod guard_body;
#[path = "guard_names.rs"]
mod guard_names;

use guard_body::{BodyRead, closing, read_limited, refuse};
use guard_names::{Listen, Origin, parse_authority};

/// The largest request body accepted (D1 itself takes statements of at most 100,000 bytes).
pub const MAX_BODY: usize = 1 << 20;
/// The environment variable holding the bearer token clients must present.
pub const TOKEN_ENV: &str = "D1OPS_SERVE_TOKEN";
/// The longest piece of a client's header quoted back in a refusal.
const QUOTE_MAX: usize = 120;

/// A configuration `serve` cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "--allow-origin {origin:?} is not an origin: {why} (write scheme://host[:port], e.g. http://localhost:3000)"
    )]
    BadOrigin { origin: String, why: &'static str },
    #[error(
        "--allow-origin {0:?} would accept every page: an opaque origin (null) is sent by any sandboxed page, local file or redirect, and * is not an origin; name the page's real origin"
    )]
    TooBroad(String),
    #[error("{TOKEN_ENV} is set but {0}")]
    BadToken(&'static str),
}

/// The bearer token clients must present. Only its SHA-256 is kept; it has no `Display` and
/// its `Debug` is redacted.
#[derive(Clone)]
pub struct ServeToken {
    digest: Vec<u8>,
}

impl std::fmt::Debug for ServeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServeToken(<redacted>)")
    }
}

impl ServeToken {
    /// A token as a client will send it: printable ASCII without spaces, not empty.
    pub fn new(token: &str) -> Result<ServeToken, AccessError> {
        if token.is_empty() {
            return Err(AccessError::BadToken(
                "empty; unset it to serve without a token, or give it a value",
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AccessError::BadToken(
                "holds characters an Authorization header cannot carry; use printable ASCII without spaces",
            ));
        }
        Ok(ServeToken {
            digest: Sha256::digest(token.as_bytes()).to_vec(),
        })
    }

    /// The token from [`TOKEN_ENV`], if set.
    pub fn from_env() -> Result<Option<ServeToken>, AccessError> {
        match std::env::var_os(TOKEN_ENV) {
            None => Ok(None),
            Some(v) => match v.to_str() {
                Some(s) => ServeToken::new(s).map(Some),
                None => Err(AccessError::BadToken("not valid UTF-8")),
            },
        }
    }

    /// Whether `presented` is the token, in time that does not depend on where they differ
    /// (both sides are hashed to the same length first).
    fn accepts(&self, presented: &[u8]) -> bool {
        let theirs = Sha256::digest(presented);
        let diff = self
            .digest
            .iter()
            .zip(theirs.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0 && self.digest.len() == theirs.len()
    }
}

/// Who may call the server besides same-origin clients: extra origins and a token.
#[derive(Debug, Clone, Default)]
pub struct Access {
    origins: Vec<Origin>,
    token: Option<ServeToken>,
}

impl Access {
    /// `allow_origins` as given to `--allow-origin` (a trailing `/` is tolerated).
    pub fn new(allow_origins: &[String], token: Option<ServeToken>) -> Result<Access, AccessError> {
        let mut origins = Vec::with_capacity(allow_origins.len());
        for given in allow_origins {
            let text = given.trim();
            if text == "*" || text.eq_ignore_ascii_case("null") {
                return Err(AccessError::TooBroad(given.clone()));
            }
            let origin = Origin::parse(text.strip_suffix('/').unwrap_or(text)).map_err(|why| {
                AccessError::BadOrigin {
                    origin: given.clone(),
                    why,
                }
            })?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Access { origins, token })
    }

    /// Whether requests must carry the bearer token.
    pub fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    /// The allowed extra origins, normalized.
    pub fn origins(&self) -> Vec<String> {
        self.origins.iter().map(Origin::to_string).collect()
    }
}
/// The checks of one running server (its listen address is known once it is bound).
#[derive(Debug)]
pub(super) struct Guard {
    listen: Listen,
    access: Access,
}

impl Guard {
    pub(super) fn new(addr: SocketAddr, access: Access) -> Guard {
        Guard {
            listen: Listen::new(addr),
            access,
        }
    }

    fn check_host(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(value) = headers.get(header::HOST) else {
            return Err(format!(
                "refused: the request has no Host header; d1ops serve answers requests addressed to {}",
                self.listen.describe()
            ));
        };
        let text = value.to_str().unwrap_or("");
        let ok = parse_authority(text).is_ok_and(|(host, port)| {
            self.listen.matches(&host, port)
                || self.access.origins.iter().any(|o| o.serves(&host, port))
        });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "refused: the Host header {} is not this server's address ({}); a page whose name was re-pointed at this machine (DNS rebinding) is refused",
                quote(value),
                self.listen.describe()
            ))
        }
    }

    /// `Ok(None)`: no `Origin` or the listen address itself; `Ok(Some(origin))`: an allowed
    /// other origin, to answer with CORS headers.
    fn check_origin(&self, headers: &HeaderMap) -> Result<Option<HeaderValue>, String> {
        let Some(value) = headers.get(header::ORIGIN) else {
            return Ok(None);
        };
        let text = value.to_str().unwrap_or("");
        if text.eq_ignore_ascii_case("null") {
            return Err(
                "refused: requests from an opaque origin (null: a sandboxed page, a local file or a cross-site redirect) are never accepted".into(),
            );
        }
        match Origin::parse(text) {
            Ok(o) if o.scheme == "http" && self.listen.matches(&o.host, o.port) => Ok(None),
            Ok(o) if self.access.origins.contains(&o) => Ok(Some(value.clone())),
            _ => Err(format!(
                "refused: requests from the web page at {} are not accepted; d1ops serve takes requests from its own address ({}), from programs that send no Origin, and from origins it was started with (--allow-origin ORIGIN)",
                quote(value),
                self.listen.describe()
            )),
        }
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let Some(token) = &self.access.token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .and_then(|v| {
                let space = v.iter().position(|&b| b == b' ')?;
                let (scheme, rest) = v.split_at(space);
                scheme
                    .eq_ignore_ascii_case(b"bearer")
                    .then(|| rest.trim_ascii())
            });
        match presented {
            None => Err(
                "Authentication error: d1ops serve was started with D1OPS_SERVE_TOKEN; send Authorization: Bearer <that token>",
            ),
            Some(t) if token.accepts(t) => Ok(()),
            Some(_) => Err("Authentication error: the bearer token is not D1OPS_SERVE_TOKEN's"),
        }
    }
}

/// A header value as quoted in a refusal: shortened, control characters escaped.
fn quote(value: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes());
    let short: String = text.chars().take(QUOTE_MAX).collect();
    let more = if text.chars().count() > QUOTE_MAX {
        "…"
    } else {
        ""
    };
    format!("{short:?}{more}")
}

/// Whether the declared media type is `application/json` (parameters such as `charset`
/// allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The middleware: every request passes here before routing.
pub(super) async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(why) = guard.check_host(&parts.headers) {
        tracing::info!(host = ?parts.headers.get(header::HOST), "serve: refused a request for another host");
        return refuse(
            body,
            &parts.headers,
            StatusCode::FORBIDDEN,
            d1::REFUSED,
            &why,
        )
        .await;
    }
    let cors = match guard.check_origin(&parts.headers) {
        Ok(c) => c,
        Err(why) => {
            tracing::info!(origin = ?parts.headers.get(header::ORIGIN), "serve: refused a request from a foreign origin");
            return refuse(
                body,
                &parts.headers,
                StatusCode::FORBIDDEN,
                d1::REFUSED,
                &why,
            )
            .await;
        }
    };
    let mut response = if parts.method == Method::OPTIONS {
        preflight(&parts.headers, cors.is_some())
    } else {
        admit(&guard, parts, body, next).await
    };
    if let Some(origin) = cors {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// Token, media type and size; then the route.
async fn admit(
    guard: &Guard,
    parts: axum::http::request::Parts,
    body: Body,
    next: Next,
) -> Response {
    if let Err(why) = guard.check_token(&parts.headers) {
        tracing::info!("serve: refused a request without the bearer token");
        let mut r = refuse(
            body,
            &parts.headers,
            StatusCode::UNAUTHORIZED,
            d1::AUTH_ERROR,
            why,
        )
        .await;
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    if !is_json(&parts.headers) {
        let got = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map_or_else(|| "none".to_string(), quote);
        return refuse(
            body,
            &parts.headers,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            d1::UNSUPPORTED_MEDIA_TYPE,
            &format!("the body must be JSON sent with Content-Type: application/json (got {got})"),
        )
        .await;
    }
    if declared_length(&parts.headers).is_some_and(|n| n > MAX_BODY) {
        return refuse(
            body,
            &parts.headers,
            StatusCode::PAYLOAD_TOO_LARGE,
            d1::TOO_LARGE,
            &too_large(),
        )
        .await;
    }
    let bytes = match read_limited(body, MAX_BODY).await {
        BodyRead::Whole(b) => b,
        BodyRead::TooLarge => {
            return closing(answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                d1::failure(d1::TOO_LARGE, &too_large()),
            ));
        }
        BodyRead::Broken(e) => {
            return closing(answer(
                StatusCode::BAD_REQUEST,
                d1::failure(
                    d1::BAD_REQUEST,
                    &format!("the request body could not be read: {e}"),
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

pub(super) fn too_large() -> String {
    format!(
        "the request body is larger than {MAX_BODY} bytes (1 MiB), the most d1ops serve accepts (D1 itself takes statements of at most 100,000 bytes)"
    )
}

/// The answer to `OPTIONS` (a CORS preflight): allowed origins may `POST` JSON with a token.
fn preflight(headers: &HeaderMap, cross_origin: bool) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    if cross_origin {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        let private_network = headers
            .get("access-control-request-private-network")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if private_network {
            h.insert(
                "access-control-allow-private-network",
                HeaderValue::from_static("true"),
            );
        }
    }
    r
}
#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
