//! The API token: held in memory only, never shown.
use serde::{Deserialize, Deserializer};

/// A Cloudflare API token. Its `Debug` and `Display` print `***`; it cannot be serialized, so
/// it never reaches state, logs or output by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

/// Where the token comes from (defined once, in `d1ops_sql`, so the core names it without
/// this crate).
pub use d1ops_sql::env_vars::TOKEN_ENV;

impl ApiToken {
    /// A token from text; `None` when blank.
    pub fn new(text: &str) -> Option<ApiToken> {
        let t = text.trim();
        (!t.is_empty()).then(|| ApiToken(t.to_string()))
    }

    /// The token from `CLOUDFLARE_API_TOKEN`, when set and not blank.
    pub fn from_env() -> Option<ApiToken> {
        std::env::var(TOKEN_ENV)
            .ok()
            .and_then(|t| ApiToken::new(&t))
    }

    /// The secret itself, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the token replaced by `***` (error text from a
    /// server or a library is passed through this before anyone sees it).
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_string();
        }
        text.replace(&self.0, "***")
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl std::fmt::Display for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for ApiToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ApiToken(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        let t = ApiToken::new("  s3cr3t-token-value ").unwrap();
        assert_eq!(format!("{t:?} {t}"), "ApiToken(***) ***");
        assert_eq!(t.redact("bad s3cr3t-token-value here"), "bad *** here");
        assert!(ApiToken::new("   ").is_none());
    }
}
