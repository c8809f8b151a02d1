//! The release detail's Code sub-view: each `[[target]]` the release was deployed with, the
//! artifact it ships, its preview and production steps (status, Worker version, preview URL,
//! when, what happened) and the failing step's output tail. Reads only
//! `ReleaseDetail::targets`.
use ratatui::text::{Line, Span};

use super::detail::{Lines, wrap};
use super::theme::Theme;
use crate::engine::{ReleaseDetail, TargetStepView};

fn dim(text: impl Into<String>, theme: &Theme) -> Line<'static> {
    Line::from(Span::styled(format!(" {}", text.into()), theme.dim()))
}

/// The sub-view's lines; `width` is the usable text width.
pub fn lines(det: &ReleaseDetail, theme: &Theme, width: usize) -> Lines {
    if det.targets.is_empty() {
        return vec![
            dim(
                "This release ships no code: d1ops.toml had no [[target]] when it was deployed.",
                theme,
            ),
            dim(
                "A [[target]] (kind = \"command\" or \"worker\") ships an --artifact after the migrations (README: Shipping code).",
                theme,
            ),
        ];
    }
    let mut out = Vec::new();
    for t in &det.targets {
        let artifact = match &t.artifact_sha256 {
            Some(sha) => format!("artifact {} {}…", t.artifact, &sha[..sha.len().min(12)]),
            None => format!(
                "no {} artifact in this release: keeps earlier code",
                t.artifact
            ),
        };
        out.push(Line::from(vec![
            Span::styled(format!(" ▸ {} ", t.name), theme.bold()),
            Span::styled(format!("({}, {artifact})", t.kind), theme.dim()),
        ]));
        if let Some(r) = &t.rollout {
            // The rollout's current split (worker targets with `rollout = […]`).
            let style = match r.status.as_str() {
                "rolling" => theme.warn(),
                "done" => theme.ok(),
                _ => theme.bad(),
            };
            let mut spans = vec![
                Span::raw("   rollout    "),
                Span::styled(r.status.as_str().to_string(), style),
                Span::raw(format!(
                    " step {} of {}: {}% new / {}% previous",
                    r.step,
                    r.total_steps,
                    r.percent,
                    100u32.saturating_sub(r.percent)
                )),
            ];
            if let Some(next) = &r.next_at {
                spans.push(Span::styled(format!("  next step {next}"), theme.dim()));
            }
            out.push(Line::from(spans));
        }
        step(&mut out, "preview", t.preview.as_ref(), theme, width);
        step(&mut out, "production", t.production.as_ref(), theme, width);
        out.push(Line::from(""));
    }
    out
}

fn step(out: &mut Lines, what: &str, s: Option<&TargetStepView>, theme: &Theme, width: usize) {
    let Some(s) = s else {
        out.push(Line::from(vec![
            Span::raw(format!("   {what:<10} ")),
            Span::styled("–", theme.dim()),
        ]));
        return;
    };
    let style = match s.status.as_str() {
        "succeeded" => theme.ok(),
        "failed" => theme.bad(),
        "running" => theme.warn(),
        _ => theme.dim(),
    };
    let mut spans = vec![
        Span::raw(format!("   {what:<10} ")),
        Span::styled(s.status.clone(), style),
        Span::styled(format!(" ({})", s.action), theme.dim()),
    ];
    if let Some(v) = &s.version_id {
        spans.push(Span::raw(format!("  version {v}")));
    }
    if let Some(at) = &s.deployed_at {
        spans.push(Span::styled(format!("  {at}"), theme.dim()));
    }
    out.push(Line::from(spans));
    let indent = "              ";
    let room = width.saturating_sub(indent.len()).max(20);
    for text in [s.detail.as_deref(), s.url.as_deref(), s.log.as_deref()]
        .into_iter()
        .flatten()
    {
        for piece in wrap(text, room) {
            out.push(Line::from(Span::raw(format!("{indent}{piece}"))));
        }
    }
    if s.status == "failed"
        && let Some(tail) = &s.output_tail
    {
        for l in tail.lines() {
            for piece in wrap(l, room) {
                out.push(Line::from(Span::styled(
                    format!("{indent}| {piece}"),
                    theme.dim(),
                )));
            }
        }
    }
}
