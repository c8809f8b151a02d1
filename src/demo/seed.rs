//! The demo's data: users, items, scores and likes written straight into production's SQLite
//! file, standing in for the mini-app's own traffic. Deterministic (a fixed xorshift seed).
use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, params};

use super::Scale;
use crate::progress;

const FIRST_NAMES: &[&str] = &[
    "Alex", "Maria", "Ivan", "Olga", "Dmitry", "Anna", "Sergey", "Elena", "Pavel", "Nadia",
    "Artem", "Sofia", "Timur", "Alina", "Kirill", "Daria", "Ruslan", "Vera", "Maxim", "Lena",
];
const LANGS: &[&str] = &["en", "en", "en", "ru", "ru", "es", "pt", "id", "uk", "de"];
const KINDS: &[&str] = &["sticker", "skin", "badge", "frame", "boost", "theme"];
const ADJ: &[&str] = &[
    "Golden", "Neon", "Pixel", "Cosmic", "Retro", "Frosty", "Lucky", "Shadow",
];
const NOUN: &[&str] = &[
    "Cat", "Rocket", "Dragon", "Cactus", "Comet", "Panda", "Wave", "Crown",
];
/// Games seeded by migration 0003.
const GAMES: u64 = 4;

/// A tiny deterministic generator (xorshift64*), enough for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn open(dir: &Path) -> anyhow::Result<Connection> {
    let path = dir.join(".d1ops/db/production.sqlite");
    let conn = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // Bulk load of rows that reference only ids generated in range, so per-row foreign-key
    // lookups are skipped; every engine connection enforces them again.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    Ok(conn)
}

/// Users, items and scores for the launch month.
pub fn production(dir: &Path, scale: Scale, seed: u64) -> anyhow::Result<()> {
    let mut conn = open(dir)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
    let tx = conn.transaction()?;
    let total = scale.users + scale.items + scale.users * 2;
    let mut progress = progress::stage("demo data", Some(total), progress::Unit::Rows);
    {
        let mut user = tx.prepare(
            "INSERT INTO users(id, telegram_id, username, first_name, language_code, is_premium, legacy_ref, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, datetime('now', ?8))",
        )?;
        for id in 1..=scale.users {
            let first = rng.pick(FIRST_NAMES);
            let username = (rng.below(10) < 8).then(|| format!("{}_{id}", first.to_lowercase()));
            let legacy = (rng.below(20) == 0).then(|| format!("v1:{:x}", rng.next() & 0xffff_ffff));
            user.execute(params![
                id,
                5_000_000_000u64 + id * 37 + rng.below(37),
                username,
                first,
                rng.pick(LANGS),
                i64::from(rng.below(10) == 0),
                legacy,
                format!("-{} minutes", rng.below(29 * 24 * 60)),
            ])?;
            if id.is_multiple_of(4096) {
                progress.set(id);
            }
        }
        let mut item = tx.prepare(
            "INSERT INTO items(owner_id, kind, title, price_stars, created_at) VALUES (?1, ?2, ?3, ?4, datetime('now', ?5))",
        )?;
        for n in 0..scale.items {
            if n.is_multiple_of(4096) {
                progress.set(scale.users + n);
            }
            item.execute(params![
                1 + rng.below(scale.users),
                rng.pick(KINDS),
                format!(
                    "{} {} #{}",
                    rng.pick(ADJ),
                    rng.pick(NOUN),
                    rng.below(10_000)
                ),
                rng.below(500),
                format!("-{} minutes", rng.below(29 * 24 * 60)),
            ])?;
        }
        let mut score = tx.prepare(
            "INSERT INTO scores(user_id, game_id, score, achieved_at) VALUES (?1, ?2, ?3, datetime('now', ?4))",
        )?;
        for n in 0..scale.users * 2 {
            if n.is_multiple_of(4096) {
                progress.set(scale.users + scale.items + n);
            }
            score.execute(params![
                1 + rng.below(scale.users),
                1 + rng.below(GAMES),
                rng.below(100_000),
                format!("-{} minutes", rng.below(29 * 24 * 60)),
            ])?;
        }
    }
    progress.set(total);
    tx.commit()?;
    Ok(())
}

/// Likes arrive once the likes release is live.
pub fn likes(dir: &Path, scale: Scale) -> anyhow::Result<()> {
    let mut conn = open(dir)?;
    let mut rng = Rng(0xD1_0B5);
    let tx = conn.transaction()?;
    {
        let mut like =
            tx.prepare("INSERT OR IGNORE INTO likes(user_id, item_id) VALUES (?1, ?2)")?;
        let mut bump = tx.prepare("UPDATE items SET like_count = like_count + 1 WHERE id = ?1")?;
        for _ in 0..scale.items / 10 {
            let item = 1 + rng.below(scale.items);
            if like.execute(params![1 + rng.below(scale.users), item])? == 1 {
                bump.execute(params![item])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// New sign-ups that reuse an existing username (what breaks a unique index on production).
pub fn duplicate_usernames(dir: &Path, n: u64) -> anyhow::Result<()> {
    let conn = open(dir)?;
    let (max_id, taken): (i64, String) = conn.query_row(
        "SELECT (SELECT max(id) FROM users), (SELECT username FROM users WHERE username IS NOT NULL ORDER BY id LIMIT 1)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for i in 1..=n as i64 {
        conn.execute(
            "INSERT INTO users(id, telegram_id, username, first_name) VALUES (?1, ?2, ?3, 'Copycat')",
            params![max_id + i, 9_000_000_000i64 + i, taken],
        )?;
    }
    Ok(())
}
