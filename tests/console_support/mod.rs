//! Shared fixtures for the console tests: real workspaces on real SQLite files in temp
//! dirs, built with the engine; a state loaded through the real worker code; rendering to
//! text with times fixed and random release-id parts masked.
#![allow(dead_code)]

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use d1ops::console::action::{Action, Effect, Request};
use d1ops::console::state::{Info, State};
use d1ops::console::{update::update, views, worker};
use d1ops::engine::{DeployRequest, Engine, EngineOptions};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// Release ids in deploy order (R1, R2, …).
    pub ids: Vec<String>,
}

impl Fixture {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// The fixed instant every snapshot is rendered at.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// Deploy times: `n` hours after midnight.
pub fn at(hours: i64) -> DateTime<Utc> {
    now() - Duration::hours(12) + Duration::hours(hours)
}

/// Freezes this process's clock (the engine's `now_utc`) at the fixture instant, so release
/// ids, deploy times and every window the worker reads are the same on any day, at any
/// machine speed. Every fixture calls it; only the first call freezes, so the clock never
/// steps back under a test running in parallel (ids are ordered by time).
pub fn pin_clock() {
    static PINNED: std::sync::Once = std::sync::Once::new();
    PINNED.call_once(|| d1ops::model::freeze_clock(now()));
}

pub fn empty() -> Fixture {
    pin_clock();
    let dir = tempfile::tempdir().expect("tempdir");
    d1ops::workspace::init(dir.path()).expect("init");
    Fixture {
        dir,
        ids: Vec::new(),
    }
}

pub fn migration(root: &Path, name: &str, sql: &str) {
    let dir = root.join("migrations");
    std::fs::create_dir_all(&dir).expect("migrations dir");
    std::fs::write(dir.join(name), sql).expect("write migration");
}

pub fn open(root: &Path, actor: &str) -> Engine {
    Engine::open(
        root,
        EngineOptions {
            actor: Some(actor.into()),
            readonly: false,
        },
    )
    .expect("open engine")
}

pub fn deploy(root: &Path, label: &str) -> String {
    let mut e = open(root, "alice");
    let out = e
        .deploy(DeployRequest {
            label: Some(label.into()),
            ..Default::default()
        })
        .expect("deploy");
    out.id
}

pub fn approve_and_promote(root: &Path, id: &str) {
    open(root, "bob")
        .approve(id, Some("lgtm"))
        .expect("approve");
    open(root, "alice").promote(id).expect("promote");
}

/// R1 superseded, R2 live, R3 ready (the candidate), R4 blocked.
pub fn populated() -> Fixture {
    let mut f = empty();
    let root = f.root().to_path_buf();
    migration(
        &root,
        "0001_users.sql",
        "CREATE TABLE users (\n  id INTEGER PRIMARY KEY,\n  email TEXT NOT NULL\n);\n",
    );
    let r1 = deploy(&root, "users table");
    approve_and_promote(&root, &r1);
    migration(
        &root,
        "0002_posts.sql",
        "-- posts belong to users\nCREATE TABLE posts (\n  id INTEGER PRIMARY KEY,\n  user_id INTEGER NOT NULL REFERENCES users(id),\n  title TEXT NOT NULL DEFAULT 'untitled'\n);\nCREATE INDEX posts_user ON posts(user_id);\n",
    );
    let r2 = deploy(&root, "posts");
    approve_and_promote(&root, &r2);
    migration(
        &root,
        "0003_bio.sql",
        "ALTER TABLE users ADD COLUMN bio TEXT;\nCREATE INDEX users_email ON users(email);\n",
    );
    let r3 = deploy(&root, "user bio");
    migration(
        &root,
        "0004_broken.sql",
        "CREATE TABLE broken (id INTEGER PRIMARY KEY;\n",
    );
    let r4 = deploy(&root, "broken");
    std::fs::remove_file(root.join("migrations/0004_broken.sql")).expect("remove");
    f.ids = vec![r1, r2, r3, r4];
    f
}

/// R1 live; R2 (a unique index) passed on its preview, then production got duplicate
/// rows, so promoting R2 fails and rolls back.
pub fn failing() -> Fixture {
    let mut f = empty();
    let root = f.root().to_path_buf();
    migration(
        &root,
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    let r1 = deploy(&root, "users table");
    approve_and_promote(&root, &r1);
    migration(
        &root,
        "0002_unique_email.sql",
        "CREATE UNIQUE INDEX users_email ON users(email);\n",
    );
    let r2 = deploy(&root, "unique emails");
    let prod =
        rusqlite::Connection::open(root.join(".d1ops/db/production.sqlite")).expect("production");
    prod.execute_batch("INSERT INTO users (email) VALUES ('a@example.com'), ('a@example.com');")
        .expect("insert duplicates");
    open(&root, "bob").approve(&r2, None).expect("approve");
    f.ids = vec![r1, r2];
    f
}

pub fn info(root: &Path, readonly: bool) -> Info {
    Info {
        workspace: "~/shop".into(),
        root: root.display().to_string(),
        backend: "local".into(),
        account: None,
        actor: "bob".into(),
        readonly,
        allow_self_approval: false,
    }
}

/// Sends effects straight to the engine (synchronously, via the worker's handler) and
/// feeds the replies back, until nothing is left.
pub fn run_effects(state: &mut State, engine: &mut Engine, mut effects: Vec<Effect>) {
    while let Some(effect) = effects.pop() {
        if let Effect::Engine(req) = effect {
            let reply = worker::handle(engine, req);
            effects.extend(update(state, Action::Reply(reply)));
        }
    }
}

/// A state loaded from the fixture's workspace, times normalized.
pub fn loaded(f: &Fixture, readonly: bool) -> (State, Engine) {
    let mut engine = open(f.root(), "bob");
    let mut state = State::new(info(f.root(), readonly), now(), 120, 40);
    state.color = false;
    let reply = worker::handle(&mut engine, Request::Refresh);
    let effects = update(&mut state, Action::Reply(reply));
    run_effects(&mut state, &mut engine, effects);
    normalize(&mut state, &f.ids);
    (state, engine)
}

/// Replaces every wall-clock timestamp in the data with a fixed one, so ages are stable.
/// Display-only text (audit details and env names) also gets ids masked and timings
/// dropped, since it is clipped to column widths where a partial id cannot be masked.
pub fn normalize(state: &mut State, ids: &[String]) {
    let fixed = (now() - Duration::minutes(30)).to_rfc3339();
    for e in &mut state.data.envs {
        e.env.created_at = fixed.clone();
        e.env.last_activity_at = fixed.clone();
    }
    let n = state.data.releases.len() as i64;
    for (i, r) in state.data.releases.iter_mut().enumerate() {
        r.created_at = at(n - i as i64).to_rfc3339();
        r.updated_at = fixed.clone();
        if r.promoted_at.is_some() {
            r.promoted_at = Some(fixed.clone());
        }
    }
    for e in &mut state.data.audit {
        e.at = fixed.clone();
        if let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(&e.detail) {
            map.remove("total_ms");
            map.remove("duration_ms");
            e.detail = serde_json::Value::Object(map).to_string();
        }
        e.detail = mask(&e.detail, ids);
        e.env = e.env.as_deref().map(|env| mask(env, ids));
    }
    let created: std::collections::HashMap<String, String> = (state.data.releases.iter())
        .map(|r| (r.id.clone(), r.created_at.clone()))
        .collect();
    if let Some(d) = state.detail.as_mut().and_then(|d| d.data.as_mut()) {
        if let Some(c) = created.get(&d.detail.release.id) {
            d.detail.release.created_at = c.clone();
        }
        for a in &mut d.detail.approvals {
            a.at = fixed.clone();
        }
        for e in &mut d.detail.history {
            e.at = fixed.clone();
        }
        if d.detail.release.promoted_at.is_some() {
            d.detail.release.promoted_at = Some(fixed.clone());
        }
    }
    if let Some(d1ops::console::dialog::Dialog::Cleanup(c)) = state.dialog.as_mut()
        && let Some(Ok(items)) = c.items.as_mut()
    {
        for i in items {
            i.idle_seconds = 1800;
        }
    }
}

/// Renders the state at `w`×`h` and returns the screen as text with ids masked.
pub fn render(state: &mut State, ids: &[String], w: u16, h: u16) -> String {
    update(state, Action::Resize(w, h));
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    term.draw(|f| views::draw(f, state)).expect("draw");
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    mask_ms(&mask(&out, ids))
}

/// Replaces measured durations (`18.7 ms`) with `N ms`.
pub fn mask_ms(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(" ms") {
        let (head, tail) = rest.split_at(pos);
        let digits = head.len()
            - head
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
                .len();
        if digits > 0 {
            out.push_str(&head[..head.len() - digits]);
            out.push('N');
        } else {
            out.push_str(head);
        }
        out.push_str(" ms");
        rest = &tail[3..];
    }
    out.push_str(rest);
    out
}

/// Replaces each release id (and the id's last 4 characters where the
/// promote dialog asks for them) with a stable marker: `R1`, `R2`, …; then any id cut short
/// by the layout (a run of id characters that begins some release id, as a list column
/// peeking out beside an overlay) with `R?~`….
pub fn mask(text: &str, ids: &[String]) -> String {
    let mut out = text.to_string();
    for (i, id) in ids.iter().enumerate() {
        let random = id.as_str();
        let marker = format!("{:~<26}", format!("R{}", i + 1));
        out = out.replace(random, &marker);
        out = out.replace(&random.to_lowercase(), &marker.to_lowercase());
        out = out.replace(
            &format!("Type {} ", &id[22..]),
            &format!("Type ~R{}~ ", i + 1),
        );
        out = out.replace(&format!(": {}█", &id[22..]), &format!(": ~R{}~█", i + 1));
        // The typed code wrapped onto its own line (narrow dialogs).
        out = out.replace(&format!(" {}█", &id[22..]), &format!(" ~R{}~█", i + 1));
    }
    mask_cut_ids(&out, ids)
}

/// The shortest cut id that is masked: four characters of a ULID are its first 20 bits of
/// time, which no ordinary word on screen spells.
const CUT_ID_MIN: usize = 4;

fn mask_cut_ids(text: &str, ids: &[String]) -> String {
    let id_char = |c: char| c.is_ascii_alphanumeric();
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let upper = token.to_ascii_uppercase();
        let owners: Vec<usize> = (ids.iter().enumerate())
            .filter(|(_, id)| token.len() >= CUT_ID_MIN && id.starts_with(&upper))
            .map(|(i, _)| i)
            .collect();
        if owners.is_empty() {
            out.push_str(token);
        } else {
            // Which release a cut id belongs to is not stable: ids made in the same frozen
            // millisecond share a prefix whose length depends on their random part. So a cut
            // id is always `R?`.
            let head = "R?".to_string();
            let marker: String = format!("{head:~<26}").chars().take(token.len()).collect();
            if token.chars().any(|c| c.is_ascii_lowercase()) {
                out.push_str(&marker.to_lowercase());
            } else {
                out.push_str(&marker);
            }
        }
        token.clear();
    };
    for c in text.chars() {
        if id_char(c) {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Query metrics and 30 days of usage for the populated fixture, relative to the pinned
/// clock (the console reads metrics as of `now_utc`, which `pin_clock` fixes): R2's promotion moved to 45 minutes ago, an hour of calm traffic before it, 30
/// minutes of slow and failing traffic after it (its watch window regresses), calm since;
/// rows written per day growing toward d1-free's 100,000.
pub fn with_metrics(f: &Fixture) {
    use d1ops::metrics::usage::UsageSample;
    use d1ops::metrics::{Histogram, MetricsStore, QueryError, QueryEvent, Resolution, Rollup};
    pin_clock();
    let clock_now = d1ops::model::now_utc();
    let p = DateTime::from_timestamp((clock_now - Duration::minutes(45)).timestamp() / 60 * 60, 0)
        .expect("time");
    let state = rusqlite::Connection::open(f.root().join(".d1ops/state.sqlite")).expect("state");
    state
        .execute(
            "UPDATE releases SET promoted_at = ?1 WHERE id = ?2",
            (p.to_rfc3339(), &f.ids[1]),
        )
        .expect("move the promotion");
    let queries: [(&str, f64, u64, u64); 4] = [
        ("SELECT id, email FROM users WHERE id = ?", 0.4, 6, 1),
        (
            "SELECT id, title FROM posts WHERE user_id = ? ORDER BY id DESC LIMIT 20",
            0.9,
            3,
            12,
        ),
        ("SELECT id FROM users WHERE email = ?", 6.0, 1, 2_000),
        (
            "INSERT INTO posts (user_id, title) VALUES (?, ?)",
            1.2,
            2,
            1,
        ),
    ];
    let mut events = Vec::new();
    for minute in -60..45 {
        let bad = (0..30).contains(&minute);
        for (i, (sql, ms, per_minute, rows)) in queries.iter().enumerate() {
            for k in 0..*per_minute {
                let mut e =
                    QueryEvent::for_sql("production", sql, if bad { ms * 12.0 } else { *ms });
                e.at = p + Duration::minutes(minute) + Duration::seconds(10 + 7 * k as i64);
                e.rows_read = *rows;
                e.rows_returned = 1;
                if i == 3 {
                    e.rows_written = 2;
                    if bad && k == 0 {
                        e.error = Some(QueryError {
                            code: "SQLITE_BUSY".into(),
                            message: "database is locked".into(),
                        });
                    }
                }
                events.push(e);
            }
        }
    }
    let mut m = MetricsStore::open(&f.root().join(".d1ops")).expect("metrics");
    m.record(&events).expect("record");
    let today = clock_now.date_naive();
    let mut rollups = Vec::new();
    for i in 0..30u64 {
        let day = today - chrono::Days::new(30 - i);
        let noon = day.and_hms_opt(12, 0, 0).expect("noon").and_utc();
        let mut h = Histogram::new();
        h.record_n(1.0, 2_000);
        rollups.push(Rollup {
            start: noon,
            resolution: Resolution::Hour,
            env: "production".into(),
            fingerprint: d1ops::metrics::fingerprint(queries[3].0),
            count: 2_000,
            errors: 0,
            sum_ms: 2_000.0,
            rows_read: 2_000,
            rows_written: 40_000 + 1_500 * i,
            rows_returned: 0,
            histogram: h,
        });
        m.record_usage(&UsageSample {
            day,
            env: "production".into(),
            storage_bytes: 20_000_000 + 400_000 * i,
            databases: 1,
        })
        .expect("usage");
    }
    m.record_rollups(&rollups).expect("rollups");
}

/// R1 live; R2 ready with a long label, a long view statement and a foreign key whose line
/// runs past 120 columns (the cases that were cut).
pub fn long_text() -> Fixture {
    let mut f = empty();
    let root = f.root().to_path_buf();
    migration(
        &root,
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL);\n",
    );
    let r1 = deploy(&root, "users table");
    approve_and_promote(&root, &r1);
    migration(
        &root,
        "0002_scores.sql",
        "CREATE TABLE scores (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, points INTEGER NOT NULL DEFAULT 0, recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);\nCREATE VIEW leaderboard AS SELECT username, sum(points) AS total, count(*) AS games FROM users JOIN scores ON scores.user_id = users.id GROUP BY username;\n",
    );
    let r2 = deploy(
        &root,
        "leaderboard: a scores table and a view that sums each player's points across every game they played this season",
    );
    f.ids = vec![r1, r2];
    f
}
