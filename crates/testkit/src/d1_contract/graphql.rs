//! Just enough GraphQL to answer D1's analytics queries: a lexer and a parser for one
//! operation (fields, aliases, arguments, `$variables` substituted from the request; no
//! fragments or directives), the walk from `viewer.accounts` to the datasets, and the
//! `/graphql` request around it (token, analytics permission, the 5-minute query budget).
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::Permission;
use super::analytics::{DATASETS, Point};
use super::http::{Req, Resp};
use super::state::State;

/// A selected field with its arguments (variables already substituted).
#[derive(Debug, Clone)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub args: Map<String, Value>,
    pub selection: Vec<Field>,
}

impl Field {
    /// The key the field answers under (its alias, else its name).
    pub fn key(&self) -> String {
        self.alias.clone().unwrap_or_else(|| self.name.clone())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Var(String),
    Str(String),
    Num(String),
    Punct(char),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' || c == '\u{feff}' {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                    s.push(match chars[i] {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    s.push(chars[i]);
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err("error parsing query: unterminated string".into());
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if c == '$' || c.is_ascii_alphabetic() || c == '_' {
            let start = if c == '$' { i + 1 } else { i };
            i = start;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            out.push(if c == '$' {
                Tok::Var(name)
            } else {
                Tok::Name(name)
            });
        } else if c == '-' || c.is_ascii_digit() {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || ".+-".contains(chars[i]))
            {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c == '.' {
            return Err("fragments are not supported by the contract server".into());
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    vars: &'a Map<String, Value>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Result<Tok, String> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t.ok_or_else(|| "error parsing query: unexpected end".to_string())
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.next()? {
            Tok::Punct(p) if p == c => Ok(()),
            other => Err(format!(
                "error parsing query: expected {c}, found {other:?}"
            )),
        }
    }

    fn at(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    /// `query Name($a: T, …) { … }` or `{ … }`: the operation's selection.
    fn document(&mut self) -> Result<Vec<Field>, String> {
        if let Some(Tok::Name(n)) = self.peek() {
            if n != "query" {
                return Err(format!(
                    "error parsing query: {n} operations are not supported"
                ));
            }
            self.pos += 1;
            if let Some(Tok::Name(_)) = self.peek() {
                self.pos += 1;
            }
            if self.at('(') {
                self.skip_balanced('(', ')')?;
            }
        }
        let sel = self.selection_set()?;
        if self.pos < self.toks.len() {
            return Err("error parsing query: only one operation is supported".into());
        }
        Ok(sel)
    }

    fn skip_balanced(&mut self, open: char, close: char) -> Result<(), String> {
        let mut depth = 0;
        loop {
            match self.next()? {
                Tok::Punct(c) if c == open => depth += 1,
                Tok::Punct(c) if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, String> {
        self.expect('{')?;
        let mut out = Vec::new();
        while !self.at('}') {
            out.push(self.field()?);
        }
        self.expect('}')?;
        Ok(out)
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next()? {
            Tok::Name(n) => Ok(n),
            other => Err(format!(
                "error parsing query: expected a name, found {other:?}"
            )),
        }
    }

    fn field(&mut self) -> Result<Field, String> {
        let mut name = self.name()?;
        let mut alias = None;
        if self.at(':') {
            self.pos += 1;
            alias = Some(name);
            name = self.name()?;
        }
        let mut args = Map::new();
        if self.at('(') {
            self.pos += 1;
            while !self.at(')') {
                let key = self.name()?;
                self.expect(':')?;
                args.insert(key, self.value()?);
            }
            self.expect(')')?;
        }
        if self.at('@') {
            return Err("directives are not supported by the contract server".into());
        }
        let selection = if self.at('{') {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Field {
            alias,
            name,
            args,
            selection,
        })
    }

    fn value(&mut self) -> Result<Value, String> {
        Ok(match self.next()? {
            Tok::Var(v) => self.vars.get(&v).cloned().unwrap_or(Value::Null),
            Tok::Str(s) => Value::String(s),
            Tok::Num(n) => serde_json::from_str(&n)
                .map_err(|_| format!("error parsing args: bad number {n}"))?,
            Tok::Name(n) => match n.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::String(n),
            },
            Tok::Punct('[') => {
                let mut items = Vec::new();
                while !self.at(']') {
                    items.push(self.value()?);
                }
                self.expect(']')?;
                Value::Array(items)
            }
            Tok::Punct('{') => {
                let mut m = Map::new();
                while !self.at('}') {
                    let key = self.name()?;
                    self.expect(':')?;
                    m.insert(key, self.value()?);
                }
                self.expect('}')?;
                Value::Object(m)
            }
            other => return Err(format!("error parsing args: unexpected {other:?}")),
        })
    }
}

/// Parses `query` with `variables` into the operation's top-level selection.
pub fn parse(query: &str, variables: &Map<String, Value>) -> Result<Vec<Field>, String> {
    Parser {
        toks: lex(query)?,
        pos: 0,
        vars: variables,
    }
    .document()
}

/// A GraphQL error body (`path`: the nodes concerned, `[]` for the whole request).
pub fn error_body(message: &str, path: Value) -> Value {
    json!({
        "data": null,
        "errors": [{
            "message": message,
            "path": path,
            "extensions": { "timestamp": Utc::now().to_rfc3339() },
        }],
    })
}

/// Answers a `/graphql` body: `(HTTP status, JSON)`.
pub fn respond(state: &State, body: &Value) -> (u16, Value) {
    let bad = |m: &str| (400, error_body(m, json!([])));
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        return bad("query contains error, please review it and retry");
    };
    let empty = Map::new();
    let vars = body
        .get("variables")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let fields = match parse(query, vars) {
        Ok(f) => f,
        Err(e) => return bad(&e),
    };
    let mut data = Map::new();
    for viewer in &fields {
        if viewer.name != "viewer" {
            return bad(&format!("unknown field \"{}\"", viewer.name));
        }
        let mut v = Map::new();
        for accounts in &viewer.selection {
            if accounts.name != "accounts" {
                return bad(&format!("unknown field \"{}\"", accounts.name));
            }
            let tag = accounts
                .args
                .get("filter")
                .and_then(|f| f.get("accountTag"))
                .and_then(Value::as_str);
            if tag != Some(state.account.as_str()) {
                return (
                    403,
                    error_body(
                        "not authorized for that account",
                        json!(["viewer", accounts.key()]),
                    ),
                );
            }
            let mut account = Map::new();
            for node in &accounts.selection {
                let Some(ds) = DATASETS.iter().find(|d| d.name == node.name) else {
                    return bad(&format!("unknown field \"{}\"", node.name));
                };
                let points = points_for(state, ds.name);
                let omit = ds.name == "d1QueriesAdaptiveGroups" && state.analytics.omit_quantiles;
                match super::analytics::answer_with(ds, &points, &node.args, &node.selection, omit)
                {
                    Ok(groups) => account.insert(node.key(), groups),
                    Err(e) => return bad(&e),
                };
            }
            v.insert(accounts.key(), Value::Array(vec![Value::Object(account)]));
        }
        data.insert(viewer.key(), Value::Object(v));
    }
    (200, json!({ "data": data, "errors": null }))
}

/// The events behind a dataset (storage gets a sample of every database taken now).
fn points_for(state: &State, dataset: &str) -> Vec<Point> {
    match dataset {
        "d1AnalyticsAdaptiveGroups" => state.analytics.batches.clone(),
        "d1QueriesAdaptiveGroups" => state.analytics.statements.clone(),
        _ => {
            let mut pts = state.analytics.storage.clone();
            let now = Utc::now();
            for db in &state.dbs {
                pts.push(Point {
                    at: now,
                    db: db.uuid.clone(),
                    query: None,
                    region: None,
                    values: vec![("databaseSizeBytes", state.file_size(&db.uuid) as f64)],
                });
            }
            pts
        }
    }
}

pub fn request(st: &mut State, req: &Req) -> Resp {
    let fail = |status: u16, message: &str| Resp::json(status, &error_body(message, json!([])));
    if req.method != "POST" {
        return fail(405, "method not allowed");
    }
    if req.auth.as_deref() != Some(format!("Bearer {}", st.token).as_str()) {
        return fail(401, "Unauthorized");
    }
    if !st.settings.permissions.contains(&Permission::AnalyticsRead) {
        return fail(403, "not authorized for that account");
    }
    let window = Duration::from_secs(300);
    let (start, used) = match st.graphql_window {
        Some((start, used)) if start.elapsed() < window => (start, used),
        _ => (Instant::now(), 0),
    };
    if used >= st.settings.graphql_budget {
        let left = window.saturating_sub(start.elapsed()).as_secs().max(1);
        return fail(
            429,
            "rate limiter budget depleted, try again after 5 minutes",
        )
        .header("retry-after", &left.to_string());
    }
    st.graphql_window = Some((start, used + 1));
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return fail(400, &r.message),
    };
    let (status, value) = respond(st, &body);
    Resp::json(status, &value)
}
