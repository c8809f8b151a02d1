//! What can go wrong talking to Cloudflare, in sentences an operator can act on.

/// The permission a call needs, as Cloudflare's token editor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    D1Read,
    D1Edit,
    AnalyticsRead,
}

impl Permission {
    pub fn label(self) -> &'static str {
        match self {
            Permission::D1Read => "Account · D1 · Read",
            Permission::D1Edit => "Account · D1 · Edit",
            Permission::AnalyticsRead => "Account · Account Analytics · Read",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudflareError {
    #[error(
        "Cloudflare did not accept the API token for {operation} (HTTP 401): check CLOUDFLARE_API_TOKEN"
    )]
    Unauthorized { operation: String },
    #[error(
        "the API token may not {operation} (HTTP 403): it needs the \"{}\" permission on account {account}",
        permission.label()
    )]
    Forbidden {
        operation: String,
        permission: Permission,
        account: String,
    },
    #[error("{operation}: not found on Cloudflare ({message})")]
    NotFound { operation: String, message: String },
    #[error("D1 rejected the SQL ({message}){}", statement.as_deref().map(|s| format!(" in: {}", d1ops_sql::text::one_line(s, 160))).unwrap_or_default())]
    Sql {
        message: String,
        statement: Option<String>,
    },
    #[error(
        "Cloudflare kept rate-limiting {operation} (HTTP 429) after {attempts} attempts; try again later"
    )]
    RateLimited { operation: String, attempts: u32 },
    #[error("Cloudflare answered HTTP {status} to {operation}: {message}")]
    Api {
        operation: String,
        status: u16,
        code: Option<i64>,
        message: String,
    },
    #[error("could not reach Cloudflare for {operation}: {message}")]
    Transport { operation: String, message: String },
    #[error("{operation} did not finish: {message}")]
    Incomplete { operation: String, message: String },
}

impl CloudflareError {
    /// Whether the request may have run on Cloudflare even though no answer came back (a
    /// write must then be checked, not repeated).
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, CloudflareError::Transport { .. })
            || matches!(self, CloudflareError::Api { status, .. } if *status >= 500)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CloudflareError::NotFound { .. })
    }
}
