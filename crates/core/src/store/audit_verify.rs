//! Verifying the audit log: recomputing the chain from the first event (plain or keyed),
//! comparing the head file and every release's recorded head with it, and checking that the
//! guard triggers still refuse UPDATE and DELETE. Reports findings; repairs nothing.
use super::audit_head::{HeadRead, read_head_file};
use super::{
    AUDIT_KEY_ENV, AuditKey, ChainHead, ChainStatus, Finding, FindingKind, GENESIS, HEAD_FILE,
    KEYED, PLAIN, Result, Store, event_hash, event_mac, head_mac, mac_matches,
};

/// The triggers that make the table append-only, with the statement each must refuse.
const GUARDS: [(&str, &str); 2] = [("audit_no_update", "UPDATE"), ("audit_no_delete", "DELETE")];

/// At most this many chain problems are listed one by one.
const MAX_LISTED: usize = 20;

/// Whether a trigger's SQL still refuses `op` on the audit table unconditionally.
pub(super) fn guards(sql: &str, op: &str) -> bool {
    let s: String = sql
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '"' | '`' | '[' | ']'))
        .collect::<String>()
        .to_uppercase();
    s.contains(&format!("BEFORE{op}ONAUDIT")) && s.contains("RAISE(ABORT") && !s.contains("WHEN")
}

impl Store {
    /// Checks the chain, the head file, every release's recorded head and the guard triggers,
    /// with the key from `D1OPS_AUDIT_KEY` when set.
    pub fn verify_audit(&self) -> Result<ChainStatus> {
        self.verify_with(AuditKey::from_env().as_ref())
    }

    pub(super) fn verify_with(&self, key: Option<&AuditKey>) -> Result<ChainStatus> {
        // The file first, then one snapshot of the table: the file is written only after the
        // commit it names, so that commit is in the snapshot even if another process appends
        // meanwhile (no false "tail cut" from a race).
        let file = self.head_path().map(|p| read_head_file(&p));
        let tx = if self.conn.is_autocommit() {
            Some(self.conn.unchecked_transaction()?)
        } else {
            None
        };
        let walk = self.walk_chain(key)?;
        let triggers = self.trigger_findings()?;
        let releases = self.release_heads()?;
        drop(tx);

        let mut findings = walk.findings;
        let mut notes = Vec::new();
        if key.is_none() && walk.keyed > 0 {
            findings.push(FindingKind::KeyedWithoutKey { events: walk.keyed });
        }
        if key.is_some() && walk.keyed > 0 && walk.plain_before_keyed > 0 {
            notes.push(format!(
                "events 1 to {} were written before {AUDIT_KEY_ENV} was set (plain SHA-256 chain); later events are keyed",
                walk.plain_before_keyed
            ));
        }
        findings.extend(triggers);

        let ends = walk.table.last().map_or(0, |e| e.0);
        let recorded = |source: &str, release: Option<&str>, head: ChainHead| {
            check_recorded(&walk.table, ends, source, release, head)
        };
        let mut head_file = None;
        match file {
            None | Some(HeadRead::Absent) => {
                if ends > 0 && (!releases.is_empty() || walk.keyed > 0) {
                    findings.push(FindingKind::HeadFileMissing {
                        table_ends_at: ends,
                    });
                } else if ends > 0 {
                    notes.push(format!(
                        "no head file yet: .d1ops/{HEAD_FILE} is written at the next audited change"
                    ));
                }
            }
            Some(HeadRead::Unreadable(reason)) => {
                findings.push(FindingKind::HeadFileUnreadable { reason })
            }
            Some(HeadRead::Present(f)) => {
                let head = ChainHead {
                    seq: f.seq,
                    hash: f.hash.clone(),
                };
                head_file = Some(head.clone());
                let problem = recorded("head_file", None, head);
                let in_chain = problem.is_none();
                findings.extend(problem);
                let keyed_head = walk
                    .table
                    .binary_search_by_key(&f.seq, |e| e.0)
                    .ok()
                    .is_some_and(|i| walk.table[i].2);
                let wrong_key = walk.findings_wrong_key;
                match (&f.mac, key) {
                    (None, _) if in_chain && keyed_head => {
                        findings.push(FindingKind::HeadFileMac {
                            seq: f.seq,
                            missing: true,
                        })
                    }
                    (Some(mac), Some(k))
                        if !wrong_key && !mac_matches(head_mac(k, f.seq, &f.hash), mac) =>
                    {
                        findings.push(FindingKind::HeadFileMac {
                            seq: f.seq,
                            missing: false,
                        })
                    }
                    _ => {}
                }
            }
        }
        let mut release_problems: Vec<FindingKind> = releases
            .iter()
            .filter_map(|(id, head)| recorded("release", Some(id), head.clone()))
            .collect();
        if release_problems.len() > MAX_LISTED {
            let more = release_problems.len() - MAX_LISTED;
            release_problems.truncate(MAX_LISTED);
            release_problems.push(FindingKind::MoreProblems { count: more });
        }
        findings.extend(release_problems);

        let findings: Vec<Finding> = findings
            .into_iter()
            .map(|kind| Finding {
                message: kind.message(),
                kind,
            })
            .collect();
        let first_bad_seq = findings.iter().find_map(|f| f.kind.seq());
        let problem = findings.first().map(|f| match findings.len() {
            1 => f.message.clone(),
            n => format!("{} (and {} more problem(s))", f.message, n - 1),
        });
        Ok(ChainStatus {
            events: walk.table.len() as u64,
            ok: findings.is_empty(),
            first_bad_seq,
            problem,
            head: walk.table.last().map(|e| ChainHead {
                seq: e.0,
                hash: e.1.clone(),
            }),
            head_file,
            release_heads: releases.len() as u64,
            keyed: walk.keyed,
            key_given: key.is_some(),
            findings,
            notes,
        })
    }

    /// Recomputes the chain from the first event.
    fn walk_chain(&self, key: Option<&AuditKey>) -> Result<Walk> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, actor, action, release_id, env, detail, prev_hash, hash, scheme \
             FROM audit ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut w = Walk::default();
        let mut prev = GENESIS.to_string();
        let mut expected = 1i64;
        let mut mac_failures = Vec::new();
        let mut problems = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let at: String = r.get(1)?;
            let actor: String = r.get(2)?;
            let action: String = r.get(3)?;
            let release: Option<String> = r.get(4)?;
            let env: Option<String> = r.get(5)?;
            let detail: String = r.get(6)?;
            let prev_hash: String = r.get(7)?;
            let hash: String = r.get(8)?;
            let scheme: String = r.get(9)?;
            let fields = [
                at.as_str(),
                actor.as_str(),
                action.as_str(),
                release.as_deref().unwrap_or(""),
                env.as_deref().unwrap_or(""),
                detail.as_str(),
            ];
            if seq > expected {
                problems.push(FindingKind::MissingEvents {
                    from_seq: expected,
                    to_seq: seq - 1,
                });
            } else if prev_hash != prev {
                problems.push(FindingKind::BrokenLink { seq });
            }
            // The content is checked against the event's own `prev_hash`: a bad link is
            // reported above, an edited field here.
            let keyed = match scheme.as_str() {
                PLAIN => {
                    if w.keyed > 0 {
                        problems.push(FindingKind::Downgraded { seq });
                    } else {
                        w.plain_before_keyed = seq;
                    }
                    if hash != event_hash(&prev_hash, seq, &fields) {
                        problems.push(FindingKind::Altered { seq });
                    }
                    false
                }
                KEYED => {
                    w.keyed += 1;
                    if let Some(k) = key
                        && !mac_matches(event_mac(k, &prev_hash, seq, &fields), &hash)
                    {
                        mac_failures.push(seq);
                    }
                    true
                }
                other => {
                    problems.push(FindingKind::UnknownScheme {
                        seq,
                        scheme: other.to_string(),
                    });
                    false
                }
            };
            w.table.push((seq, hash.clone(), keyed));
            prev = hash;
            expected = seq + 1;
        }
        match mac_failures.first() {
            Some(&first) if w.keyed >= 2 && mac_failures.len() as u64 == w.keyed => {
                w.findings_wrong_key = true;
                problems.push(FindingKind::MacMismatch {
                    seq: first,
                    wrong_key: true,
                });
            }
            _ => problems.extend(
                mac_failures
                    .into_iter()
                    .map(|seq| FindingKind::MacMismatch {
                        seq,
                        wrong_key: false,
                    }),
            ),
        }
        problems.sort_by_key(|p| p.seq());
        if problems.len() > MAX_LISTED {
            let more = problems.len() - MAX_LISTED;
            problems.truncate(MAX_LISTED);
            problems.push(FindingKind::MoreProblems { count: more });
        }
        w.findings = problems;
        Ok(w)
    }

    /// The guard triggers that are missing or no longer refuse their change.
    fn trigger_findings(&self) -> Result<Vec<FindingKind>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND lower(tbl_name) = 'audit'",
        )?;
        let present = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut missing = Vec::new();
        let mut neutered = Vec::new();
        for (name, op) in GUARDS {
            match present.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                None => missing.push(name.to_string()),
                Some((_, sql)) if !guards(sql.as_deref().unwrap_or(""), op) => {
                    neutered.push(name.to_string())
                }
                Some(_) => {}
            }
        }
        let mut out = Vec::new();
        if !missing.is_empty() {
            out.push(FindingKind::MissingTriggers { names: missing });
        }
        if !neutered.is_empty() {
            out.push(FindingKind::NeuteredTriggers { names: neutered });
        }
        Ok(out)
    }

    /// Every release's recorded head.
    fn release_heads(&self) -> Result<Vec<(String, ChainHead)>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, audit_head_seq, audit_head_hash FROM releases \
             WHERE audit_head_seq IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ChainHead {
                        seq: r.get(1)?,
                        hash: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// The chain as read by verify.
#[derive(Default)]
pub(super) struct Walk {
    /// (seq, hash, keyed) of every event, in seq order.
    table: Vec<(i64, String, bool)>,
    keyed: u64,
    /// The last seq of the unkeyed prefix.
    plain_before_keyed: i64,
    findings: Vec<FindingKind>,
    /// Whether no keyed event matched the given key (reported once, not per event).
    findings_wrong_key: bool,
}

/// A recorded head is fine when the chain holds that event with that hash (the chain may go
/// on after it); beyond the table's end it is a cut tail, and with another hash a rewrite.
pub(super) fn check_recorded(
    table: &[(i64, String, bool)],
    ends: i64,
    source: &str,
    release: Option<&str>,
    recorded: ChainHead,
) -> Option<FindingKind> {
    if recorded.seq == 0 && recorded.hash == GENESIS {
        // Written before the first event: an ancestor of every chain.
        return None;
    }
    let release = release.map(str::to_string);
    if recorded.seq > ends {
        return Some(FindingKind::TailCut {
            source: source.to_string(),
            release,
            recorded,
            table_ends_at: ends,
        });
    }
    let table_hash = table
        .binary_search_by_key(&recorded.seq, |e| e.0)
        .ok()
        .map(|i| table[i].1.clone());
    (table_hash.as_deref() != Some(recorded.hash.as_str())).then(|| FindingKind::HeadNotInChain {
        source: source.to_string(),
        release,
        recorded,
        table_hash,
    })
}
