//! `update` is pure: these cases build a state from model structs alone (no database) and
//! check what each action does to it and which engine requests it asks for.
use chrono::{TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use d1ops::console::action::{Action, Effect, Reply, Request, Snapshot};
use d1ops::console::dialog::{Dialog, Focus};
use d1ops::console::state::{Info, State, Tab, ToastKind};
use d1ops::console::{keymap, update::update};
use d1ops::model::{Release, ReleaseState};

fn release(n: usize, state: ReleaseState) -> Release {
    Release {
        id: format!("01TEST{n:020}"),
        state,
        author: "alice".into(),
        label: Some(format!("release {n}")),
        commit: None,
        supersedes: None,
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
        verdict: None,
        preview_env: None,
        base_fingerprint: None,
        failure: None,
        root_cause: None,
        guardrail: None,
        promoted_at: None,
        promoted_by: None,
        recovery_snapshot: None,
        pending_count: 1,
    }
}

fn state(readonly: bool, states: &[ReleaseState]) -> State {
    let now = Utc
        .with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .expect("time");
    let info = Info {
        workspace: "w".into(),
        readonly,
        ..Info::default()
    };
    let mut s = State::new(info, now, 120, 40);
    let snap = Snapshot {
        releases: states
            .iter()
            .enumerate()
            .map(|(i, st)| release(i + 1, *st))
            .collect(),
        ..Snapshot::default()
    };
    s.in_flight.push_back("refreshing".into());
    s.refresh_pending = true;
    update(&mut s, Action::Reply(Reply::Snapshot(Ok(Box::new(snap)))));
    s
}

fn key(s: &mut State, code: KeyCode) -> Vec<Effect> {
    match keymap::resolve(s, &KeyEvent::new(code, KeyModifiers::NONE)) {
        Some(a) => update(s, a),
        None => Vec::new(),
    }
}

fn requests(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Engine(r) => format!("{r:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn moving_clamps_at_both_ends() {
    let mut s = state(false, &[ReleaseState::Ready; 5]);
    for (code, expected) in [
        (KeyCode::Char('k'), 0),
        (KeyCode::Char('j'), 1),
        (KeyCode::Char('G'), 4),
        (KeyCode::Down, 4),
        (KeyCode::Char('g'), 0),
        (KeyCode::PageDown, 4),
        (KeyCode::PageUp, 0),
    ] {
        key(&mut s, code);
        assert_eq!(s.releases.selected, expected, "after {code:?}");
    }
}

#[test]
fn filter_types_into_the_list_and_esc_clears_it() {
    let mut s = state(false, &[ReleaseState::Ready; 12]);
    key(&mut s, KeyCode::Char('/'));
    for c in "release 1".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    // "release 1", "release 10", "release 11", "release 12"
    assert_eq!(s.releases.visible.len(), 4);
    assert!(s.releases.editing, "q and j type while filtering");
    key(&mut s, KeyCode::Char('q'));
    assert!(!s.quit);
    assert_eq!(s.releases.filter, "release 1q");
    key(&mut s, KeyCode::Backspace);
    key(&mut s, KeyCode::Enter);
    assert!(!s.releases.editing);
    assert_eq!(s.releases.visible.len(), 4, "Enter keeps the filter");
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.releases.visible.len(), 12, "Esc clears it");
}

#[test]
fn tabs_cycle_and_number_keys_jump() {
    let mut s = state(false, &[]);
    for (code, tab) in [
        (KeyCode::Char('1'), Tab::Environments),
        (KeyCode::Tab, Tab::Releases),
        (KeyCode::BackTab, Tab::Environments),
        (KeyCode::BackTab, Tab::Audit),
        (KeyCode::Char('3'), Tab::Monitor),
    ] {
        key(&mut s, code);
        assert_eq!(s.tab, tab, "after {code:?}");
    }
}

#[test]
fn clicking_a_tab_and_a_row() {
    let mut s = state(false, &[ReleaseState::Ready; 3]);
    update(&mut s, Action::Click { col: 2, row: 1 });
    assert_eq!(s.tab, Tab::Environments);
    update(&mut s, Action::Click { col: 18, row: 1 });
    assert_eq!(s.tab, Tab::Releases);
    // Body starts at row 2: title, heading, then rows.
    let fx = update(&mut s, Action::Click { col: 5, row: 6 });
    assert_eq!(s.releases.selected, 2);
    assert!(fx.is_empty(), "first click selects");
    let fx = update(&mut s, Action::Click { col: 5, row: 6 });
    assert_eq!(
        requests(&fx),
        vec![format!("Detail({:?})", release(3, ReleaseState::Ready).id)]
    );
}

#[test]
fn enter_opens_detail_and_q_backs_out_before_quitting() {
    let mut s = state(false, &[ReleaseState::Ready]);
    let fx = key(&mut s, KeyCode::Enter);
    assert_eq!(fx.len(), 1);
    assert!(s.detail.is_some() && s.busy());
    key(&mut s, KeyCode::Char('q'));
    assert!(s.detail.is_none() && !s.quit);
    key(&mut s, KeyCode::Char('q'));
    assert!(s.quit);
}

#[test]
fn readonly_has_no_actions() {
    let mut s = state(true, &[ReleaseState::Ready]);
    for c in ['a', 'p', 'x'] {
        assert!(key(&mut s, KeyCode::Char(c)).is_empty());
        assert!(s.dialog.is_none(), "{c} opened a dialog in read-only mode");
    }
    key(&mut s, KeyCode::Char('1'));
    key(&mut s, KeyCode::Char('c'));
    assert!(s.dialog.is_none());
    let footer = keymap::footer(&s);
    assert!(
        footer.iter().all(|(_, d)| !d.contains("clean up")),
        "{footer:?}"
    );
    let help = keymap::help_sections(true);
    assert!(
        help.iter()
            .flat_map(|(_, r)| r)
            .all(|(_, d)| !["approve", "promote", "abandon"].contains(d))
    );
}

#[test]
fn actions_on_the_wrong_state_toast_instead_of_opening_a_dialog() {
    let mut s = state(false, &[ReleaseState::Superseded]);
    key(&mut s, KeyCode::Char('a'));
    assert!(s.dialog.is_none());
    assert!(
        s.toasts
            .last()
            .is_some_and(|t| t.text.contains("only a ready release"))
    );
}

#[test]
fn approve_dialog_starts_on_cancel_and_sends_the_note() {
    let mut s = state(false, &[ReleaseState::Ready]);
    key(&mut s, KeyCode::Char('a'));
    let Some(Dialog::Confirm(c)) = &s.dialog else {
        panic!("dialog")
    };
    assert_eq!(c.focus, Focus::Cancel);
    for ch in "ok j".chars() {
        key(&mut s, KeyCode::Char(ch));
    }
    key(&mut s, KeyCode::Right);
    let fx = key(&mut s, KeyCode::Enter);
    let id = release(1, ReleaseState::Ready).id;
    assert_eq!(
        requests(&fx),
        vec![format!(
            "{:?}",
            Request::Approve {
                id,
                note: Some("ok j".into())
            }
        )]
    );
    assert!(s.dialog.is_none());
}

#[test]
fn promote_needs_the_preview_and_the_last_four_characters() {
    let mut s = state(false, &[ReleaseState::Approved]);
    let id = release(1, ReleaseState::Approved).id;
    let fx = key(&mut s, KeyCode::Char('p'));
    assert_eq!(requests(&fx), vec![format!("PromotePreview({id:?})")]);
    key(&mut s, KeyCode::Tab);
    assert!(
        key(&mut s, KeyCode::Enter).is_empty(),
        "no promote before the preview arrives"
    );
    let preview = d1ops::console::action::PromotePreview {
        required: 1,
        approvals: 1,
        ..Default::default()
    };
    update(
        &mut s,
        Action::Reply(Reply::PromotePreview {
            id: id.clone(),
            result: Ok(Box::new(preview)),
        }),
    );
    for ch in id[22..].chars() {
        key(&mut s, KeyCode::Char(ch));
    }
    let fx = key(&mut s, KeyCode::Enter);
    assert_eq!(requests(&fx), vec![format!("Promote({id:?})")]);
}

#[test]
fn outcome_toasts_and_refreshes() {
    let mut s = state(false, &[ReleaseState::Ready]);
    s.in_flight.push_back("promoting".into());
    let fx = update(
        &mut s,
        Action::Reply(Reply::Outcome {
            ok: false,
            text: "Promote refused: x.".into(),
        }),
    );
    assert_eq!(requests(&fx), vec!["Refresh".to_string()]);
    assert_eq!(s.toasts.len(), 1);
}

#[test]
fn ticks_refresh_periodically_and_expire_toasts() {
    let mut s = state(false, &[]);
    let t0 = s.now;
    s.last_refresh = Some(t0);
    assert!(update(&mut s, Action::Tick(t0 + chrono::Duration::seconds(2))).is_empty());
    let fx = update(&mut s, Action::Tick(t0 + chrono::Duration::seconds(6)));
    assert_eq!(requests(&fx), vec!["Refresh".to_string()]);
    assert!(
        update(&mut s, Action::Tick(t0 + chrono::Duration::seconds(7))).is_empty(),
        "one refresh at a time"
    );
}

#[test]
fn keymap_markdown_lists_every_action() {
    let md = keymap::keymap_markdown();
    for needle in [
        "`q`",
        "`Ctrl-C`",
        "`/`",
        "`?`",
        "promote",
        "clean up previews",
        "`1`–`5`",
    ] {
        assert!(md.contains(needle), "{needle} missing from\n{md}");
    }
}

#[test]
fn quit_is_immediate_unless_a_write_is_in_flight() {
    let mut s = state(false, &[ReleaseState::Ready]);
    s.in_flight.push_back("reading metrics".into());
    key(&mut s, KeyCode::Char('q'));
    assert!(s.quit, "a read in flight never holds q");

    let mut s = state(false, &[ReleaseState::Approved]);
    s.send(Request::Promote("R1".into()));
    key(&mut s, KeyCode::Char('q'));
    assert!(!s.quit, "a promotion in flight: q asks first");
    let Some(Dialog::Quit(q)) = &s.dialog else {
        panic!("the quit dialog: {:?}", s.dialog)
    };
    assert_eq!(q.what, "promoting");
    // Enter on the focused "Wait": quit once the promotion answers.
    key(&mut s, KeyCode::Enter);
    assert!(!s.quit && s.quit_when_idle);
    update(
        &mut s,
        Action::Reply(Reply::Outcome {
            ok: true,
            text: "R1 is live".into(),
        }),
    );
    assert!(s.quit, "quits as soon as the write finished");

    // Ctrl-C quits from inside a dialog too.
    let mut s = state(false, &[ReleaseState::Ready]);
    key(&mut s, KeyCode::Char('a'));
    assert!(s.dialog.is_some());
    update(&mut s, Action::ForceQuit);
    assert!(s.quit, "Ctrl-C quits from a dialog");

    // "Quit now" leaves it to recovery.
    let mut s = state(false, &[ReleaseState::Approved]);
    s.send(Request::Restore("R1".into()));
    key(&mut s, KeyCode::Char('q'));
    key(&mut s, KeyCode::Tab);
    key(&mut s, KeyCode::Enter);
    assert!(s.quit);
}

#[test]
fn esc_on_a_loading_dialog_cancels_its_read() {
    let mut s = state(false, &[ReleaseState::Live]);
    s.data.releases[0].recovery_snapshot = Some(1);
    let fx = key(&mut s, KeyCode::Char('S'));
    assert_eq!(
        requests(&fx),
        vec!["RestorePreview(\"01TEST00000000000000000001\")".to_string()]
    );
    let fx = key(&mut s, KeyCode::Esc);
    assert!(s.dialog.is_none());
    assert!(matches!(fx.as_slice(), [Effect::Cancel]), "{fx:?}");
    // A loaded dialog has nothing to cancel.
    key(&mut s, KeyCode::Char('a'));
    let fx = key(&mut s, KeyCode::Esc);
    assert!(fx.is_empty());
}

#[test]
fn errors_stay_until_esc_and_info_toasts_expire() {
    let mut s = state(false, &[]);
    s.toast(ToastKind::Error, "boom");
    s.toast(ToastKind::Info, "fyi");
    let later = s.now + chrono::Duration::hours(1);
    s.last_refresh = Some(later);
    update(&mut s, Action::Tick(later));
    assert_eq!(s.toasts.len(), 1, "the error stays, the info went");
    key(&mut s, KeyCode::Esc);
    assert!(s.toasts.is_empty(), "Esc dismisses it");
}

#[test]
fn the_footer_keeps_every_key_at_80_and_60_columns() {
    use d1ops::console::views::footer_spans;
    use d1ops::console::views::theme::Theme;
    let mut s = state(false, &[ReleaseState::Ready]);
    let keys: Vec<String> = keymap::footer(&s).into_iter().map(|(k, _)| k).collect();
    for width in [60, 80] {
        let spans = footer_spans(&keymap::footer(&s), width, &Theme { color: false });
        let text: String = spans.iter().map(|sp| sp.content.as_ref()).collect();
        assert!(text.chars().count() <= width, "{width}: {text}");
        for k in &keys {
            assert!(
                text.contains(&format!(" {k}")),
                "{width}: {k} missing in {text}"
            );
        }
    }
    key(&mut s, KeyCode::Enter);
    let text: String = footer_spans(&keymap::footer(&s), 80, &Theme { color: false })
        .iter()
        .map(|sp| sp.content.to_string())
        .collect();
    assert!(text.contains(" S") && text.contains(" Esc"), "{text}");
}

#[test]
fn palette_completes_commands_and_ids() {
    let mut s = state(false, &[ReleaseState::Ready, ReleaseState::Live]);
    key(&mut s, KeyCode::Char(':'));
    for c in "prom".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    key(&mut s, KeyCode::Tab);
    assert_eq!(
        s.palette.as_ref().map(|p| p.input.as_str()),
        Some("promote ")
    );
    let ids: Vec<String> = d1ops::console::palette::completions(&s, "promote 0");
    assert_eq!(ids.len(), 2, "{ids:?}");
    let fx = key(&mut s, KeyCode::Esc);
    assert!(fx.is_empty() && s.palette.is_none());
}
