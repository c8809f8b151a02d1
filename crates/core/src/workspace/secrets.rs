//! Keeping secrets out of configuration errors. A parse error of `d1ops.toml` or a wrangler
//! file never shows the source line (toml's `Display` quotes it, token included): messages
//! are built from the error's position and its message alone, name the key when one is
//! known, and have every value that could be a secret replaced by `***` — the value of any
//! key named like a token, key, secret, password or credential, and the value of
//! `CLOUDFLARE_API_TOKEN` when it is set.

/// What replaces a secret in a message.
pub const REDACTED: &str = "***";

/// Whether a key name reads like it holds a secret: `token`, `apiToken`, `api_key`,
/// `API-KEY`, `client_secret`, `password`, `credentials`, … (case and style insensitive).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.trim().trim_matches(['"', '\'']);
    let squashed: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const PARTS: [&str; 8] = [
        "token",
        "secret",
        "passw",
        "credential",
        "apikey",
        "privatekey",
        "accesskey",
        "bearer",
    ];
    if PARTS.iter().any(|p| squashed.contains(p)) {
        return true;
    }
    words(key)
        .iter()
        .any(|w| matches!(w.as_str(), "key" | "pwd" | "auth" | "pass"))
}

/// `apiToken` → [api, token]; `api_key` → [api, key]; `X-Auth-Key` → [x, auth, key].
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Every text in `source` that could be a secret: the values given to secret-like keys
/// (`key = value` in TOML, `"key": value` in JSON), quoted or not, terminated or not; and
/// the value of `CLOUDFLARE_API_TOKEN`. Longest first, so redaction replaces whole values.
pub fn secret_values(source: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |v: &str| {
        let v = v.trim();
        if v.chars().count() >= 3 && !found.iter().any(|f| f == v) {
            found.push(v.to_string());
        }
    };
    if let Ok(token) = std::env::var(d1ops_sql::env_vars::TOKEN_ENV)
        && token.trim().len() >= 4
    {
        add(&token);
    }
    for line in source.lines() {
        for (key, raw, inner) in assignments(line) {
            if is_secret_key(key) {
                add(raw);
                add(inner);
            }
        }
    }
    found.sort_by_key(|v| std::cmp::Reverse(v.len()));
    found
}

/// `(key, raw value text, value without quotes)` for every `key = value` / `"key": value`
/// on one line.
fn assignments(line: &str) -> Vec<(&str, &str, &str)> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(sep) = line[i..].find(['=', ':']).map(|p| p + i) else {
            break;
        };
        // The key: the identifier-ish run (maybe quoted) just before the separator.
        let before = line[..sep].trim_end();
        let before = before.trim_end_matches(['"', '\'']);
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |p| p + 1);
        let key = &before[start..];
        // The value: a quoted string (to its closing quote or the end of the line), or a
        // bare run up to a delimiter.
        let rest = &line[sep + 1..];
        let trimmed = rest.trim_start();
        let value_start = sep + 1 + (rest.len() - trimmed.len());
        let (raw, inner, end) = match trimmed.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &trimmed[1..];
                match body.find(q) {
                    Some(close) => (
                        &trimmed[..close + 2],
                        &body[..close],
                        value_start + close + 2,
                    ),
                    None => (trimmed, body, line.len()),
                }
            }
            _ => {
                let len = trimmed
                    .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | ']' | '#'))
                    .unwrap_or(trimmed.len());
                (&trimmed[..len], &trimmed[..len], value_start + len)
            }
        };
        if !key.is_empty() {
            out.push((key, raw, inner));
        }
        i = end.max(sep + 1);
    }
    out
}

/// `text` with every secret replaced by [`REDACTED`].
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// 1-based line and column of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let mut at = offset;
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |p| before[p + 1..].chars().count())
        + 1;
    (line, column)
}

/// The dotted key assigned on 1-based `line` of a TOML text, with its table
/// (`cloudflare.api_token`), when that line is a plain `key = …` assignment.
pub fn toml_key_at(source: &str, line: usize) -> Option<String> {
    toml_keys(source)
        .into_iter()
        .find(|(l, _)| *l == line)
        .map(|(_, k)| k)
}

/// The 1-based line where `dotted` (`cloudflare.api_token`) is assigned, when it is written
/// as a plain `key = …` line.
pub fn toml_line_of(source: &str, dotted: &str) -> Option<usize> {
    toml_keys(source)
        .into_iter()
        .find(|(_, k)| k == dotted)
        .map(|(l, _)| l)
}

/// `(line, table.key)` for every plain `key = …` line of a TOML text, in one pass.
fn toml_keys(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut table = String::new();
    let strip = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '"' | '\'' | ' '))
            .collect()
    };
    for (i, text) in source.lines().enumerate() {
        let t = text.trim();
        if let Some(header) = t.strip_prefix('[') {
            let header = header.trim_start_matches('[');
            if let Some(end) = header.find(']') {
                table = strip(&header[..end]);
            }
            continue;
        }
        let Some((key, _)) = t.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let plain = !key.is_empty()
            && key.len() <= 64
            && key.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' ')
            });
        if !plain {
            continue;
        }
        let key = strip(key);
        out.push((
            i + 1,
            if table.is_empty() {
                key
            } else {
                format!("{table}.{key}")
            },
        ));
    }
    out
}

/// A toml parse or type error as `line N, column M: [key: ]message`, never quoting the
/// source, with secrets redacted. A secret-like key that is not a setting gets its own
/// sentence.
pub fn toml_error(err: &toml::de::Error, source: &str) -> (Option<(usize, usize)>, String) {
    let secrets = secret_values(source);
    let at = err.span().map(|s| line_column(source, s.start));
    let key = at.and_then(|(line, _)| toml_key_at(source, line));
    let message = err.message().trim().to_string();
    let message = match unknown_field(&message) {
        Some(field) if is_secret_key(&field) => format!(
            "{} looks like a secret, and secrets are never written in a config file (its value is not shown); remove it and set {} in the environment",
            key.clone().unwrap_or_else(|| format!("`{field}`")),
            d1ops_sql::env_vars::TOKEN_ENV
        ),
        _ => match key {
            Some(k) if !message.contains(&format!("`{k}`")) => format!("{k}: {message}"),
            _ => message,
        },
    };
    (at, redact(&one_line(&message), &secrets))
}

/// The field an "unknown field `x`, expected …" message names.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(f, _)| f.to_string())
}

/// Joins the lines of a message into one.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_in_every_style() {
        for k in [
            "token",
            "api_token",
            "apiToken",
            "APIToken",
            "api_key",
            "apiKey",
            "API-KEY",
            "apikey",
            "key",
            "client_secret",
            "password",
            "db_pwd",
            "credentials",
            "\"X-Auth-Key\"",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "account_id",
            "database_id",
            "keep_last",
            "keep_days",
            "migrations_table",
            "monkey",
            "statement_timeout",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn values_of_secret_keys_are_found() {
        let text = "[cloudflare]\ntoken = \"s3cr3t-one\"\napiToken='s3cr3t-two'\napi_key = s3cr3t-three\napi_token = \"s3cr3t-four\naccount_id = \"acc\"\n{\"apiKey\": \"s3cr3t-five\", \"x\": 1}\n";
        let found = secret_values(text);
        for s in [
            "s3cr3t-one",
            "s3cr3t-two",
            "s3cr3t-three",
            "s3cr3t-four",
            "s3cr3t-five",
        ] {
            assert!(found.iter().any(|f| f == s), "{s}: {found:?}");
        }
        assert!(!found.iter().any(|f| f.contains("acc")), "{found:?}");
    }

    #[test]
    fn toml_errors_never_quote_the_line() {
        for text in [
            "[cloudflare]\ntoken = \"s3cr3t-value\"\n",
            "[cloudflare]\napiToken = \"s3cr3t-value\"\n",
            "[cloudflare]\napi_token = s3cr3t-value\n",
            "[cloudflare]\napi_token = \"s3cr3t-value\n",
            "[cloudflare]\napi_token = 's3cr3t-value\n",
            "[cloudflare]\napi_token = 12345s3cr3t-value\n",
            "[cloudflare]\napi_token = [\"s3cr3t-value\"]\n",
        ] {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            #[allow(dead_code)]
            struct Cf {
                api_token: Option<String>,
            }
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            struct Top {
                cloudflare: Cf,
            }
            let err = toml::from_str::<Top>(text).err().expect(text);
            let (at, msg) = toml_error(&err, text);
            assert!(!msg.contains("s3cr3t"), "{text}: {msg}");
            assert_eq!(at.map(|a| a.0), Some(2), "{text}: {msg}");
        }
    }

    #[test]
    fn keys_and_positions() {
        let text = "a = 1\n[policy]\nrequired_approvals = \"two\"\n";
        assert_eq!(
            toml_key_at(text, 3).as_deref(),
            Some("policy.required_approvals")
        );
        assert_eq!(toml_key_at(text, 1).as_deref(), Some("a"));
        assert_eq!(toml_key_at(text, 2), None);
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 8), (2, 3));
    }
}
