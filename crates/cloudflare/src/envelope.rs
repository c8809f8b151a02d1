//! Cloudflare's v4 response envelope: `{success, errors, messages, result, result_info}`.
use serde::Deserialize;
use serde_json::Value;

/// One response of the v4 API.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope<T> {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ApiMessage>,
    /// Informational messages (strings or `{code, message}` objects).
    #[serde(default)]
    pub messages: Vec<Value>,
    pub result: Option<T>,
    #[serde(default)]
    pub result_info: Option<ResultInfo>,
}

/// An entry of `errors`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ApiMessage {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// Pagination of list calls.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ResultInfo {
    #[serde(default)]
    pub page: Option<u64>,
    #[serde(default)]
    pub per_page: Option<u64>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub total_count: Option<u64>,
    #[serde(default)]
    pub total_pages: Option<u64>,
}

/// The `errors` of a body that may not even be an envelope (a proxy's HTML, an empty body).
pub fn errors_of(body: &Value) -> Vec<ApiMessage> {
    let mut out: Vec<ApiMessage> = body
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| ApiMessage {
                    code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    // GraphQL reports `errors: [{message, extensions: {code}}]`.
    for e in out.iter_mut() {
        if e.message.is_empty() {
            e.message = "(no message)".into();
        }
    }
    out
}
