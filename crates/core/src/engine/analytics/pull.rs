//! Fetching a [`Plan`]: one request carrying every node, then further pages for a query node
//! that came back full (10,000 groups), each page asked from the last bucket of the one
//! before (whose groups are dropped and read again whole). When a page cannot be had (budget,
//! error), the group's data is cut at the last complete bucket and the next sync continues
//! from there; nothing after the cut is kept, so nothing is counted twice.
use chrono::{DateTime, Utc};

use super::plan::Plan;
use super::sync::{Budget, send};
use crate::cloudflare::Client;
use crate::cloudflare::analytics::{
    AnalyticsError, Answer, Bucket, DailyGroup, Node, QueryGroup, Request, StorageGroup,
};
use crate::metrics::MetricsError;
use crate::metrics::analytics::BudgetSpent;

/// Why fetching stopped.
pub(crate) enum Stop {
    Budget(BudgetSpent),
    Api(AnalyticsError),
    Store(MetricsError),
}

/// What a plan fetched.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub queries: Vec<QueryGroup>,
    pub daily: Vec<DailyGroup>,
    pub storage: Vec<StorageGroup>,
    /// Per plan group: where its complete data ends (its `to`, or an earlier cut).
    pub ends: Vec<DateTime<Utc>>,
    /// Groups lost to a bucket holding more than one page.
    pub truncated: usize,
}

fn bucket_len(b: Bucket) -> chrono::Duration {
    match b {
        Bucket::Minute => chrono::Duration::minutes(1),
        Bucket::Hour => chrono::Duration::hours(1),
    }
}

pub(super) fn fetch(client: &Client, plan: &Plan, budget: &mut Budget) -> Result<Fetched, Stop> {
    let mut nodes = Vec::new();
    let mut owners = Vec::new();
    for (i, g) in plan.groups.iter().enumerate() {
        for n in g.nodes() {
            nodes.push(n);
            owners.push(Some(i));
        }
    }
    for n in plan.day_nodes() {
        nodes.push(n);
        owners.push(None);
    }
    let mut out = Fetched {
        ends: plan.groups.iter().map(|g| g.to).collect(),
        ..Fetched::default()
    };
    if nodes.is_empty() {
        return Ok(out);
    }
    let answers = send(
        client,
        budget,
        &Request {
            nodes: nodes.clone(),
        },
    )?;
    for ((node, owner), answer) in nodes.into_iter().zip(owners).zip(answers) {
        match answer {
            Answer::Queries { groups, full } => {
                let end = pages(client, budget, node, groups, full, &mut out)?;
                if let (Some(i), Some(end)) = (owner, end) {
                    out.ends[i] = out.ends[i].min(end);
                }
            }
            Answer::Daily(d) => out.daily.extend(d),
            Answer::Storage(s) => out.storage.extend(s),
        }
    }
    Ok(out)
}

/// Follows a query node's pages; returns where its data had to be cut, if it had to.
fn pages(
    client: &Client,
    budget: &mut Budget,
    mut node: Node,
    mut groups: Vec<QueryGroup>,
    mut full: bool,
    out: &mut Fetched,
) -> Result<Option<DateTime<Utc>>, Stop> {
    loop {
        let Node::Queries {
            from, to, bucket, ..
        } = &mut node
        else {
            out.queries.extend(groups);
            return Ok(None);
        };
        if !full {
            out.queries.extend(groups);
            return Ok(None);
        }
        let first = groups.iter().map(|g| g.start).min();
        let last = groups.iter().map(|g| g.start).max();
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(None);
        };
        if first == last {
            // One bucket fills a page: keep what came and go on after it.
            tracing::warn!(bucket = %last, "D1 analytics: over 10,000 query texts in one bucket; the rest is not counted");
            out.truncated += 1;
            out.queries.extend(groups);
            *from = last + bucket_len(*bucket);
        } else {
            out.queries
                .extend(groups.into_iter().filter(|g| g.start < last));
            *from = last;
        }
        if *from >= *to {
            return Ok(None);
        }
        let cut = *from;
        match send(
            client,
            budget,
            &Request {
                nodes: vec![node.clone()],
            },
        ) {
            Ok(mut answers) => match answers.pop() {
                Some(Answer::Queries { groups: g, full: f }) => {
                    groups = g;
                    full = f;
                }
                _ => return Ok(Some(cut)),
            },
            Err(Stop::Store(e)) => return Err(Stop::Store(e)),
            Err(Stop::Budget(_) | Stop::Api(_)) => {
                tracing::warn!(%cut, "D1 analytics: a further page could not be read; the next sync continues from here");
                return Ok(Some(cut));
            }
        }
    }
}
