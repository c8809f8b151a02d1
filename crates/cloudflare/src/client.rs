//! The HTTP client: authentication, timeouts, retries and error mapping for every call.
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::{Client as Http, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::envelope::{Envelope, errors_of};
use super::error::{CloudflareError, Permission};
use super::token::ApiToken;

/// Cloudflare's API, unless `D1OPS_CLOUDFLARE_API_BASE` says otherwise.
pub const API_BASE: &str = "https://api.cloudflare.com/client/v4";
/// Overrides [`API_BASE`] (tests, proxies).
pub const BASE_ENV: &str = "D1OPS_CLOUDFLARE_API_BASE";
/// The account, when `[cloudflare].account_id` is not set.
pub const ACCOUNT_ENV: &str = "CLOUDFLARE_ACCOUNT_ID";

/// Where and how to talk to Cloudflare.
#[derive(Debug, Clone)]
pub struct Settings {
    pub base: String,
    pub account_id: String,
    pub token: ApiToken,
    pub timeout: Duration,
    /// Extra attempts after a 429 (any call) or a 5xx / transport failure (idempotent calls).
    pub retries: u32,
    /// First wait between attempts when the server gives no `Retry-After`; doubles each time.
    pub backoff: Duration,
}

/// One API call.
#[derive(Debug, Clone)]
pub struct Call {
    /// What the call does, in words ("create database preview-x"), for errors.
    pub operation: String,
    pub method: Method,
    /// Path below the base URL, starting with `/`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub permission: Permission,
    /// Safe to repeat after a 5xx or a lost answer.
    pub idempotent: bool,
    /// Most extra attempts for this call (`None`: the client's setting). A call whose every
    /// request is counted against a budget (GraphQL analytics) sets 0.
    pub retries: Option<u32>,
    /// A body sent as is instead of `body`'s JSON (a multipart upload).
    pub raw_body: Option<RawBody>,
}

/// A request body that is not JSON: its `Content-Type` and bytes.
#[derive(Clone)]
pub struct RawBody {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for RawBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RawBody({}, {} bytes)",
            self.content_type,
            self.bytes.len()
        )
    }
}

impl Call {
    pub fn new(
        operation: impl Into<String>,
        method: Method,
        path: String,
        permission: Permission,
    ) -> Call {
        let idempotent = method == Method::GET || method == Method::DELETE;
        Call {
            operation: operation.into(),
            method,
            path,
            query: Vec::new(),
            body: None,
            permission,
            idempotent,
            retries: None,
            raw_body: None,
        }
    }

    /// Sends `bytes` with this `Content-Type` instead of a JSON body.
    pub fn raw_body(mut self, content_type: impl Into<String>, bytes: Vec<u8>) -> Call {
        self.raw_body = Some(RawBody {
            content_type: content_type.into(),
            bytes,
        });
        self
    }

    pub fn body(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }

    pub fn query(mut self, key: &str, value: impl ToString) -> Call {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    /// Marks a POST as safe to repeat (a read-only query, a poll).
    pub fn idempotent(mut self, yes: bool) -> Call {
        self.idempotent = yes;
        self
    }

    /// Caps the extra attempts of this call (0: exactly one request).
    pub fn retries(mut self, n: u32) -> Call {
        self.retries = Some(n);
        self
    }
}

/// A blocking client for the v4 API of one account.
pub struct Client {
    http: Http,
    settings: Settings,
}

pub type Result<T, E = CloudflareError> = std::result::Result<T, E>;

/// Most seconds a `Retry-After` is honoured for before giving up on the call.
const MAX_RETRY_AFTER: u64 = 120;

impl Client {
    pub fn new(settings: Settings) -> Result<Client> {
        let http = Http::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10).min(settings.timeout))
            .user_agent(concat!("d1ops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudflareError::Transport {
                operation: "start the HTTP client".into(),
                message: e.to_string(),
            })?;
        Ok(Client { http, settings })
    }

    pub fn account_id(&self) -> &str {
        &self.settings.account_id
    }

    pub fn base(&self) -> &str {
        &self.settings.base
    }

    /// `text` with the API token blanked out (for text that came from elsewhere: a server's
    /// message, a library's error).
    pub fn redact(&self, text: &str) -> String {
        self.settings.token.redact(text)
    }

    /// `/accounts/{account_id}{rest}`.
    pub fn account_path(&self, rest: &str) -> String {
        format!("/accounts/{}{rest}", self.settings.account_id)
    }

    /// Sends `call`, retrying as its kind allows, and returns the decoded envelope of a
    /// successful answer.
    pub fn send<T: DeserializeOwned>(&self, call: &Call) -> Result<Envelope<T>> {
        let body = self.send_raw(call)?;
        serde_json::from_value::<Envelope<T>>(body).map_err(|e| CloudflareError::Api {
            operation: call.operation.clone(),
            status: 200,
            code: None,
            message: format!("unexpected answer: {e}"),
        })
    }

    /// Like [`Client::send`], for a call whose successful answer is not an envelope (GraphQL).
    pub fn send_raw(&self, call: &Call) -> Result<Value> {
        let url = format!("{}{}", self.settings.base.trim_end_matches('/'), call.path);
        let retries = call.retries.unwrap_or(self.settings.retries);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(self.settings.token.expose())
                .query(&call.query);
            if let Some(raw) = &call.raw_body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, raw.content_type.as_str())
                    .body(raw.bytes.clone());
            } else if let Some(b) = &call.body {
                req = req.json(b);
            }
            tracing::debug!(operation = %call.operation, method = %call.method, path = %call.path, attempt, "cloudflare call");
            let retry_wait = match req.send() {
                Err(e) => {
                    let err = CloudflareError::Transport {
                        operation: call.operation.clone(),
                        message: self.settings.token.redact(&without_url(&e)),
                    };
                    if call.idempotent && attempt <= retries {
                        self.backoff(attempt)
                    } else {
                        return Err(err);
                    }
                }
                Ok(resp) => match self.answer(call, resp) {
                    Ok(v) => return Ok(v),
                    Err(Retry::No(e)) => return Err(e),
                    Err(Retry::After(wait, e)) => {
                        if attempt > retries {
                            return Err(e);
                        }
                        wait.unwrap_or_else(|| self.backoff(attempt))
                    }
                },
            };
            tracing::warn!(operation = %call.operation, attempt, wait_ms = retry_wait.as_millis() as u64, "cloudflare call retried");
            std::thread::sleep(retry_wait);
        }
    }

    /// Extra attempts the client allows a call (its `Settings::retries`).
    pub fn retries(&self) -> u32 {
        self.settings.retries
    }

    /// Waits as the client does between attempts (`attempt` counts from 1), for callers that
    /// retry a write themselves after checking whether it landed.
    pub fn pause(&self, attempt: u32) {
        std::thread::sleep(self.backoff(attempt));
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << (attempt.saturating_sub(1)).min(6);
        (self.settings.backoff * factor).min(Duration::from_secs(8))
    }

    /// Maps an HTTP answer to a value, an error, or "retry (after this long)".
    fn answer(&self, call: &Call, resp: Response) -> Result<Value, Retry> {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = resp.text().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let errors = errors_of(&body);
        let first = errors
            .first()
            .map(|e| self.settings.token.redact(&e.message))
            .unwrap_or_else(|| short(&self.settings.token.redact(&text)));
        let code = errors.first().map(|e| e.code);
        let op = call.operation.clone();
        let api = |message: String| CloudflareError::Api {
            operation: op.clone(),
            status,
            code,
            message,
        };
        match status {
            200..=299 => {
                if body.get("success").and_then(Value::as_bool) == Some(false) {
                    return Err(Retry::No(api(first)));
                }
                Ok(body)
            }
            401 => Err(Retry::No(CloudflareError::Unauthorized { operation: op })),
            403 => Err(Retry::No(CloudflareError::Forbidden {
                operation: op,
                permission: call.permission,
                account: self.settings.account_id.clone(),
            })),
            404 => Err(Retry::No(CloudflareError::NotFound {
                operation: op,
                message: first,
            })),
            429 => {
                let wait = retry_after.map(|s| Duration::from_secs(s.min(MAX_RETRY_AFTER)));
                Err(Retry::After(
                    wait,
                    CloudflareError::RateLimited {
                        operation: op,
                        attempts: call.retries.unwrap_or(self.settings.retries) + 1,
                    },
                ))
            }
            500..=599 if call.idempotent => Err(Retry::After(
                retry_after.map(|s| Duration::from_secs(s.min(MAX_RETRY_AFTER))),
                api(first),
            )),
            _ if code == Some(7500) || errors.iter().any(|e| e.code == 7500) => {
                Err(Retry::No(CloudflareError::Sql {
                    message: first,
                    statement: None,
                }))
            }
            _ => Err(Retry::No(api(first))),
        }
    }

    /// GETs a pre-signed URL (an export's download). The API token is NOT sent: the URL
    /// carries its own signature and may point anywhere.
    pub fn download(&self, operation: &str, url: &str) -> Result<Vec<u8>> {
        self.unauthenticated(operation, Method::GET, url, None)
    }

    /// PUTs `body` to a pre-signed upload URL (an import's upload), without the API token.
    pub fn upload(&self, operation: &str, url: &str, body: Vec<u8>) -> Result<()> {
        self.unauthenticated(operation, Method::PUT, url, Some(body))
            .map(|_| ())
    }

    fn unauthenticated(
        &self,
        operation: &str,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), url);
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let failure = match req.send() {
                Ok(resp) if resp.status().is_success() => {
                    return resp.bytes().map(|b| b.to_vec()).map_err(|e| {
                        CloudflareError::Transport {
                            operation: operation.into(),
                            message: without_url(&e),
                        }
                    });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let err = CloudflareError::Api {
                        operation: operation.into(),
                        status,
                        code: None,
                        message: format!("the storage URL answered HTTP {status}"),
                    };
                    if status < 500 && status != 429 {
                        return Err(err);
                    }
                    err
                }
                Err(e) => CloudflareError::Transport {
                    operation: operation.into(),
                    message: without_url(&e),
                },
            };
            if attempt > self.settings.retries {
                return Err(failure);
            }
            std::thread::sleep(self.backoff(attempt));
        }
    }
}

enum Retry {
    No(CloudflareError),
    After(Option<Duration>, CloudflareError),
}

/// A reqwest error's text without the URL (signed URLs carry credentials of their own).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off or unreadable"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

fn short(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        "(empty answer)".into()
    } else {
        d1ops_sql::text::one_line(t, 200)
    }
}
