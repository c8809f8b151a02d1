//! The names `serve`'s checks compare: an `Origin` (`scheme://host[:port]`, lowercased, the
//! scheme's default port filled in), a `Host` authority, and the names the listen address
//! answers to (`127.0.0.1:PORT`, `localhost:PORT` for a loopback listen).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `scheme://host[:port]`, lowercased, with the scheme's default port filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    pub(super) scheme: String,
    pub(super) host: String,
    pub(super) port: Option<u16>,
}

impl Origin {
    pub(super) fn parse(text: &str) -> Result<Origin, &'static str> {
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
    pub(super) fn serves(&self, host: &str, port: Option<u16>) -> bool {
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
pub(super) fn parse_authority(text: &str) -> Result<(String, Option<u16>), &'static str> {
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
pub(super) struct Listen {
    port: u16,
    /// Host names (`127.0.0.1`, `localhost`, `[::1]`), lowercase.
    hosts: Vec<String>,
    /// An unspecified listen address (`0.0.0.0`): any IP literal is this machine (an IP
    /// literal cannot be rebound; a name can).
    any_ip: bool,
}

impl Listen {
    pub(super) fn new(addr: SocketAddr) -> Listen {
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

    pub(super) fn matches(&self, host: &str, port: Option<u16>) -> bool {
        port.unwrap_or(80) == self.port
            && (self.hosts.iter().any(|h| h == host) || (self.any_ip && is_ip_literal(host)))
    }

    /// The accepted forms, for messages.
    pub(super) fn describe(&self) -> String {
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
