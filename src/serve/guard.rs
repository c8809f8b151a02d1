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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{answer, d1};

/// The largest request body accepted (D1 itself takes statements of at most 100,000 bytes).
pub const MAX_BODY: usize = 1 << 20;
/// The environment variable holding the bearer token clients must present.
pub const TOKEN_ENV: &str = "D1OPS_SERVE_TOKEN";
/// How much of a refused request's body is read and discarded before answering, so the
/// client reads the answer rather than a connection reset.
const DRAIN_CAP: usize = 8 << 20;
/// How long a refused request's body may take to drain.
const DRAIN_TIME: Duration = Duration::from_secs(5);
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

/// `scheme://host[:port]`, lowercased, with the scheme's default port filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(text: &str) -> Result<Origin, &'static str> {
        let (scheme, rest) = text.split_once("://").ok_or("no scheme://")?;
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err("a bad scheme");
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err("an origin has no path, query or user");
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = parse_authority(rest)?;
        Ok(Origin {
            port: port.or(default_port(&scheme)),
            scheme,
            host,
        })
    }

    /// Whether a request whose `Host` is `host[:port]` is addressed to this (web) origin, as
    /// when a development server proxies to `serve` and keeps the `Host`.
    fn serves(&self, host: &str, port: Option<u16>) -> bool {
        let default = default_port(&self.scheme);
        default.is_some()
            && self.host == host
            && match port {
                Some(p) => self.port == Some(p),
                None => self.port == default,
            }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) if self.port != default_port(&self.scheme) => {
                write!(f, "{}://{}:{p}", self.scheme, self.host)
            }
            _ => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

/// `host[:port]` or `[v6]:port`, lowercased; the port if one is written.
fn parse_authority(text: &str) -> Result<(String, Option<u16>), &'static str> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']').ok_or("an unclosed [")?;
        let inside = &rest[..end];
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err("a bad IPv6 address");
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("junk after ]")?),
        };
        (&text[..end + 2], port)
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("a bad host name");
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "a bad port")?)
        }
        Some(_) => return Err("a bad port"),
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// The names the listen address answers to.
#[derive(Debug, Clone)]
struct Listen {
    port: u16,
    /// Host names (`127.0.0.1`, `localhost`, `[::1]`), lowercase.
    hosts: Vec<String>,
    /// An unspecified listen address (`0.0.0.0`): any IP literal is this machine (an IP
    /// literal cannot be rebound; a name can).
    any_ip: bool,
}

impl Listen {
    fn new(addr: SocketAddr) -> Listen {
        let ip = addr.ip();
        let literal = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let hosts = if ip.is_unspecified() {
            vec!["localhost".into()]
        } else if ip.is_loopback() {
            vec![literal, "localhost".into()]
        } else {
            vec![literal]
        };
        Listen {
            port: addr.port(),
            hosts,
            any_ip: ip.is_unspecified(),
        }
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        port.unwrap_or(80) == self.port
            && (self.hosts.iter().any(|h| h == host) || (self.any_ip && is_ip_literal(host)))
    }

    /// The accepted forms, for messages.
    fn describe(&self) -> String {
        let mut forms: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!("{h}:{}", self.port))
            .collect();
        if self.any_ip {
            forms.insert(0, format!("an IP address:{}", self.port));
        }
        forms.join(" or ")
    }
}

fn is_ip_literal(host: &str) -> bool {
    host.parse::<Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok())
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

/// A refusal in the D1 envelope, after reading and discarding what the client is sending
/// (bounded), so that it reads this answer rather than a reset connection.
async fn refuse(
    body: Body,
    headers: &HeaderMap,
    status: StatusCode,
    code: u32,
    message: &str,
) -> Response {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !expects_continue && declared_length(headers).is_none_or(|n| n <= DRAIN_CAP) {
        drain(body, 0).await;
    }
    closing(answer(status, d1::failure(code, message)))
}

fn closing(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

enum BodyRead {
    Whole(Bytes),
    TooLarge,
    Broken(String),
}

async fn next_data(body: &mut Body) -> Option<Result<Option<Bytes>, axum::Error>> {
    let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
    Some(frame.map(|f| f.into_data().ok()))
}

/// The body, or `TooLarge` (the rest drained) once it passes `limit`.
async fn read_limited(mut body: Body, limit: usize) -> BodyRead {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match next_data(&mut body).await {
            None => return BodyRead::Whole(Bytes::from(buf)),
            Some(Err(e)) => return BodyRead::Broken(e.to_string()),
            Some(Ok(None)) => {}
            Some(Ok(Some(data))) => {
                if buf.len() + data.len() > limit {
                    drain(body, buf.len() + data.len()).await;
                    return BodyRead::TooLarge;
                }
                buf.extend_from_slice(&data);
            }
        }
    }
}

/// Reads and discards the rest of a body, up to [`DRAIN_CAP`] bytes in all and
/// [`DRAIN_TIME`].
async fn drain(mut body: Body, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen <= DRAIN_CAP {
            match next_data(&mut body).await {
                Some(Ok(data)) => seen += data.map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn loopback(port: u16) -> Guard {
        Guard::new(SocketAddr::from(([127, 0, 0, 1], port)), Access::default())
    }

    #[test]
    fn host_must_be_the_listen_address() {
        let g = loopback(8787);
        for ok in ["127.0.0.1:8787", "localhost:8787", "LOCALHOST:8787"] {
            assert_eq!(g.check_host(&headers(&[("host", ok)])), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example:8787",
            "evil.example",
            "127.0.0.1:8788",
            "127.0.0.1",
            "localhost.:8787",
            "127.0.0.1:8787@evil",
            "",
        ] {
            assert!(g.check_host(&headers(&[("host", bad)])).is_err(), "{bad}");
        }
        assert!(g.check_host(&HeaderMap::new()).is_err());
        let v6 = Guard::new("[::1]:9000".parse().unwrap(), Access::default());
        assert_eq!(v6.check_host(&headers(&[("host", "[::1]:9000")])), Ok(()));
        let port80 = loopback(80);
        assert_eq!(
            port80.check_host(&headers(&[("host", "localhost")])),
            Ok(())
        );
    }

    #[test]
    fn an_unspecified_listen_accepts_ip_literals_not_names() {
        let g = Guard::new("0.0.0.0:8787".parse().unwrap(), Access::default());
        for ok in ["192.168.1.5:8787", "127.0.0.1:8787", "localhost:8787"] {
            assert_eq!(g.check_host(&headers(&[("host", ok)])), Ok(()), "{ok}");
        }
        assert!(
            g.check_host(&headers(&[("host", "evil.example:8787")]))
                .is_err()
        );
    }

    #[test]
    fn origins_are_the_listen_address_or_allowed() {
        let access = Access::new(
            &[
                "http://localhost:3000/".into(),
                "HTTPS://App.Example.com".into(),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            access.origins(),
            ["http://localhost:3000", "https://app.example.com"]
        );
        let g = Guard::new(SocketAddr::from(([127, 0, 0, 1], 8787)), access);
        let origin = |o: &str| g.check_origin(&headers(&[("origin", o)]));
        assert_eq!(g.check_origin(&HeaderMap::new()), Ok(None));
        assert_eq!(origin("http://127.0.0.1:8787"), Ok(None));
        assert_eq!(origin("http://localhost:8787"), Ok(None));
        assert!(origin("http://localhost:3000").unwrap().is_some());
        assert!(origin("https://app.example.com:443").unwrap().is_some());
        for bad in [
            "null",
            "http://evil.example",
            "https://127.0.0.1:8787",
            "http://localhost:3001",
            "http://app.example.com",
            "http://127.0.0.1:8787/path",
            "garbage",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
        // A dev server proxying with the Host kept.
        assert_eq!(
            g.check_host(&headers(&[("host", "localhost:3000")])),
            Ok(())
        );
    }

    #[test]
    fn bad_allow_origins_are_refused() {
        for (given, broad) in [
            ("null", true),
            ("*", true),
            ("localhost:3000", false),
            ("http://", false),
            ("http://a b", false),
            ("http://x:99999", false),
            ("http://x/path", false),
        ] {
            let err = Access::new(&[given.into()], None).unwrap_err();
            assert_eq!(
                matches!(err, AccessError::TooBroad(_)),
                broad,
                "{given}: {err}"
            );
        }
    }

    #[test]
    fn the_token_is_checked_and_never_shown() {
        let token = ServeToken::new("s3cret-Token").unwrap();
        assert_eq!(format!("{token:?}"), "ServeToken(<redacted>)");
        let g = Guard::new(
            SocketAddr::from(([127, 0, 0, 1], 1)),
            Access::new(&[], Some(token)).unwrap(),
        );
        let auth = |v: &str| g.check_token(&headers(&[("authorization", v)]));
        assert_eq!(auth("Bearer s3cret-Token"), Ok(()));
        assert_eq!(auth("bearer  s3cret-Token "), Ok(()));
        assert!(auth("Bearer s3cret-token").is_err());
        assert!(auth("Bearer s3cret-Token2").is_err());
        assert!(auth("Basic s3cret-Token").is_err());
        assert!(auth("s3cret-Token").is_err());
        assert!(g.check_token(&HeaderMap::new()).is_err());
        assert!(ServeToken::new("").is_err());
        assert!(ServeToken::new("two words").is_err());
    }

    #[test]
    fn only_json_is_accepted() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            assert!(!is_json(&headers(&[("content-type", bad)])), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
