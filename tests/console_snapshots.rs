//! Whole-screen snapshots of every console view at 80×24 and 120×40 (TestBackend), built
//! from real workspaces; times are fixed and release ids masked (see console_support).
mod console_support;

use console_support::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use d1ops::console::action::{Action, Request};
use d1ops::console::keymap;
use d1ops::console::state::{DetailTab, State, Tab};
use d1ops::console::update::update;
use d1ops::console::worker;
use d1ops::engine::Engine;

/// Snapshots the state at both sizes.
fn check(name: &str, state: &mut State, ids: &[String]) {
    for (w, h) in [(60, 20), (80, 24), (120, 40)] {
        let screen = render(state, ids, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen);
    }
}

fn key(state: &mut State, engine: &mut Engine, ids: &[String], code: KeyCode) {
    let ev = KeyEvent::new(code, KeyModifiers::NONE);
    if let Some(action) = keymap::resolve(state, &ev) {
        let effects = update(state, action);
        run_effects(state, engine, effects);
    }
    normalize(state, ids);
}

/// Shows a tab and runs the requests it makes (the Monitor and Capacity read their data).
fn go(state: &mut State, engine: &mut Engine, ids: &[String], tab: Tab) {
    let effects = update(state, Action::GoTab(tab));
    run_effects(state, engine, effects);
    normalize(state, ids);
}

fn keys(state: &mut State, engine: &mut Engine, ids: &[String], text: &str) {
    for c in text.chars() {
        key(state, engine, ids, KeyCode::Char(c));
    }
}

#[test]
fn empty_workspace() {
    let f = empty();
    let (mut state, mut engine) = loaded(&f, false);
    check("empty_releases", &mut state, &f.ids);
    update(&mut state, Action::GoTab(Tab::Environments));
    check("empty_environments", &mut state, &f.ids);
    go(&mut state, &mut engine, &f.ids, Tab::Capacity);
    check("empty_capacity", &mut state, &f.ids);
    go(&mut state, &mut engine, &f.ids, Tab::Monitor);
    check("empty_monitor", &mut state, &f.ids);
}

#[test]
fn populated_tabs() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    for tab in Tab::ALL {
        go(&mut state, &mut engine, &f.ids, tab);
        check(
            &format!("populated_{}", tab.title().to_lowercase()),
            &mut state,
            &f.ids,
        );
    }
}

#[test]
fn release_detail_sub_views() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    // Select R3 (the ready candidate): the list is newest first.
    keys(&mut state, &mut engine, &f.ids, "2j");
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    for tab in DetailTab::ALL {
        check(
            &format!("detail_{}", tab.title().to_lowercase().replace(' ', "_")),
            &mut state,
            &f.ids,
        );
        key(&mut state, &mut engine, &f.ids, KeyCode::Tab);
    }
}

#[test]
fn failed_release_and_error_toast() {
    let f = failing();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "2p");
    let code = f.ids[1][22..].to_string();
    keys(&mut state, &mut engine, &f.ids, &code);
    key(&mut state, &mut engine, &f.ids, KeyCode::Tab);
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    check("promotion_failed_toast", &mut state, &f.ids);
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    // The last sub-view is the failure record.
    for _ in 1..DetailTab::ALL.len() {
        key(&mut state, &mut engine, &f.ids, KeyCode::Tab);
    }
    check("detail_failure_record", &mut state, &f.ids);
}

#[test]
fn promote_confirmation() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "2jp");
    check("promote_confirm_cancel_focused", &mut state, &f.ids);
    let code = f.ids[2][22..].to_string();
    keys(&mut state, &mut engine, &f.ids, &code);
    key(&mut state, &mut engine, &f.ids, KeyCode::Tab);
    check("promote_confirm_blocked_by_approvals", &mut state, &f.ids);
    // At 60×20 the summary scrolls with ↓ under a fixed title, code field and buttons.
    for _ in 0..4 {
        key(&mut state, &mut engine, &f.ids, KeyCode::Down);
    }
    let screen = render(&mut state, &f.ids, 60, 20);
    insta::assert_snapshot!("promote_confirm_scrolled_60x20", screen);
    assert!(screen.contains("above"), "{screen}");
    assert!(screen.contains("Promote (disabled)"), "{screen}");
}

#[test]
fn approve_dialog() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "2ja");
    keys(&mut state, &mut engine, &f.ids, "schema looks fine");
    check("approve_dialog", &mut state, &f.ids);
}

#[test]
fn cleanup_dialog() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "1c");
    check("cleanup_dialog", &mut state, &f.ids);
}

#[test]
fn help_overlay() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "?");
    check("help", &mut state, &f.ids);
}

#[test]
fn readonly_variant() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, true);
    keys(&mut state, &mut engine, &f.ids, "2");
    check("readonly_releases", &mut state, &f.ids);
    keys(&mut state, &mut engine, &f.ids, "jap");
    assert!(
        state.dialog.is_none(),
        "readonly must not open action dialogs"
    );
    keys(&mut state, &mut engine, &f.ids, "?");
    check("readonly_help", &mut state, &f.ids);
    // Down to the smallest size drawn, the header keeps the badge and the alert count.
    for (w, h) in [(50, 12), (60, 20), (80, 24)] {
        let screen = render(&mut state, &f.ids, w, h);
        let header = screen.lines().next().unwrap_or_default();
        assert!(
            header.contains("READ-ONLY") && header.contains("alerts 0"),
            "{w}×{h}: {header}"
        );
    }
}

#[test]
fn filter_narrows_the_list() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "2/bio");
    check("releases_filtered", &mut state, &f.ids);
    let reply = worker::handle(&mut engine, Request::Refresh);
    update(&mut state, Action::Reply(reply));
    assert_eq!(state.releases.visible.len(), 1);
}

#[test]
fn rollback_and_restore_confirmations() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "2jjjR");
    check("rollback_confirm", &mut state, &f.ids);
    key(&mut state, &mut engine, &f.ids, KeyCode::Esc);
    keys(&mut state, &mut engine, &f.ids, "kS");
    check("restore_confirm", &mut state, &f.ids);
}

#[test]
fn readonly_has_no_rollback_or_restore() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, true);
    keys(&mut state, &mut engine, &f.ids, "2jjjR");
    assert!(state.dialog.is_none());
    keys(&mut state, &mut engine, &f.ids, "S");
    assert!(state.dialog.is_none());
}

#[test]
fn monitor_and_capacity_with_traffic_and_history() {
    let f = populated();
    with_metrics(&f);
    let (mut state, mut engine) = loaded(&f, false);
    go(&mut state, &mut engine, &f.ids, Tab::Monitor);
    assert_eq!(state.alerts(), 1, "the live release's watch regressed");
    check("monitor_with_traffic", &mut state, &f.ids);
    // `o` orders by errors, `j` selects the second query; `w` widens to 24h.
    keys(&mut state, &mut engine, &f.ids, "oooj");
    check("monitor_by_errors", &mut state, &f.ids);
    keys(&mut state, &mut engine, &f.ids, "w");
    assert_eq!(state.monitor.window.label(), "24h");
    go(&mut state, &mut engine, &f.ids, Tab::Capacity);
    // Select rows written / day: its history, projection and limit are charted.
    keys(&mut state, &mut engine, &f.ids, "jjj");
    check("capacity_with_history", &mut state, &f.ids);
}

#[test]
fn cloudflare_header_and_analytics_freshness() {
    use d1ops::engine::analytics::{BudgetUse, Freshness, SOURCE, SyncOutcome};
    // No traffic yet (charts follow the real clock; this is about the header and the line).
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    state.info.backend = "cloudflare".into();
    state.info.account = Some("0123456789abcdef0123456789abcdef".into());
    let fresh = Freshness {
        source: SOURCE,
        synced_at: Some(now() - chrono::Duration::minutes(3)),
        age_seconds: Some(180),
        newest_bucket: Some(now() - chrono::Duration::minutes(4)),
        last_outcome: Some(SyncOutcome::Synced),
        note: None,
        next_sync_at: Some(now() + chrono::Duration::minutes(2)),
        budget: BudgetUse {
            used: 3,
            limit: 250,
            window_seconds: 300,
        },
    };
    go(&mut state, &mut engine, &f.ids, Tab::Monitor);
    if let Some(Ok(d)) = state.monitor.data.as_mut() {
        d.freshness = Some(fresh.clone());
    }
    check("cloudflare_monitor", &mut state, &f.ids);
    go(&mut state, &mut engine, &f.ids, Tab::Capacity);
    if let Some(Ok(d)) = state.capacity.data.as_mut() {
        d.usage.freshness = Some(Freshness {
            last_outcome: Some(SyncOutcome::Budget),
            note: Some(
                "showing cached data: d1ops' GraphQL budget is used up (250 of 250 requests per 5 min); the next sync can run at 12:03"
                    .into(),
            ),
            ..fresh
        });
    }
    check("cloudflare_capacity_budget_spent", &mut state, &f.ids);
}

#[test]
fn long_sql_and_long_labels_wrap_instead_of_cutting() {
    let f = long_text();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "2");
    check("long_label_releases", &mut state, &f.ids);
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    check("long_sql_migrations", &mut state, &f.ids);
    // Every word of the statement is on screen: wrapped, not cut.
    let screen = render(&mut state, &f.ids, 80, 24);
    let words: Vec<&str> = screen.split_whitespace().collect();
    for w in ["GROUP", "BY", "username;", "CURRENT_TIMESTAMP);"] {
        assert!(words.contains(&w), "{w} missing:\n{screen}");
    }
    key(&mut state, &mut engine, &f.ids, KeyCode::Tab);
    check("long_sql_schema_diff", &mut state, &f.ids);
    let screen = render(&mut state, &f.ids, 120, 40);
    assert!(screen.contains("ON DELETE CASCADE"), "{screen}");
}

#[test]
fn alerts_list_and_palette() {
    let f = populated();
    with_metrics(&f);
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "!");
    check("alerts_list", &mut state, &f.ids);
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    assert_eq!(state.tab, Tab::Monitor, "Enter goes to the Monitor");
    assert!(state.alerts_open.is_none());
    keys(&mut state, &mut engine, &f.ids, ":re");
    check("palette_completions", &mut state, &f.ids);
}

#[test]
fn quit_while_promoting_asks_first() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    keys(&mut state, &mut engine, &f.ids, "2");
    let _ = state.send(Request::Promote(f.ids[2].clone()));
    update(&mut state, Action::Quit);
    assert!(!state.quit);
    check("quit_while_promoting", &mut state, &f.ids);
}

#[test]
fn undo_restore_dialog() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    engine
        .restore_plan(&f.ids[1])
        .and_then(|plan| engine.restore(&plan))
        .expect("restore");
    let reply = worker::handle(&mut engine, Request::Refresh);
    update(&mut state, Action::Reply(reply));
    normalize(&mut state, &f.ids);
    keys(&mut state, &mut engine, &f.ids, "2U");
    keys(&mut state, &mut engine, &f.ids, "und");
    check("undo_restore_dialog", &mut state, &f.ids);
}

#[test]
fn readonly_key_says_why() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, true);
    keys(&mut state, &mut engine, &f.ids, "2jp");
    check("readonly_promote_message", &mut state, &f.ids);
}

#[test]
fn approve_warns_the_author_up_front() {
    let f = populated();
    let (mut state, mut engine) = loaded(&f, false);
    state.info.actor = "alice".into();
    keys(&mut state, &mut engine, &f.ids, "2ja");
    check("approve_own_release", &mut state, &f.ids);
}

#[test]
fn too_small_says_the_size_needed() {
    let f = empty();
    let (mut state, _engine) = loaded(&f, false);
    let screen = render(&mut state, &f.ids, 40, 10);
    insta::assert_snapshot!("too_small_40x10", screen);
}
