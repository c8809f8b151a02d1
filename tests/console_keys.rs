//! Key-script tests: the real keymap, `update` and engine worker thread driven by scripted
//! key presses against real workspaces; outcomes are checked through a fresh engine.
mod console_support;

use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use console_support::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use d1ops::console::action::{Action, Effect, Reply};
use d1ops::console::dialog::Dialog;
use d1ops::console::state::{State, ToastKind};
use d1ops::console::worker::Worker;
use d1ops::console::{keymap, update::update};
use d1ops::engine::view::TopBy;
use d1ops::model::ReleaseState;

struct Console {
    state: State,
    worker: Worker,
    replies: Receiver<Reply>,
    /// What `y` put on the clipboard (the text of each OSC 52 sequence).
    copied: Vec<String>,
}

impl Console {
    fn open(f: &Fixture, actor: &str) -> Console {
        Console::open_as(f, actor, false)
    }

    fn open_as(f: &Fixture, actor: &str, readonly: bool) -> Console {
        let (tx, replies) = channel();
        let worker = Worker::spawn(open(f.root(), actor), move |r| {
            let _ = tx.send(r);
        })
        .expect("worker");
        let mut info = info(f.root(), readonly);
        info.actor = actor.into();
        let mut c = Console {
            state: State::new(info, chrono::Utc::now(), 120, 40),
            worker,
            replies,
            copied: Vec::new(),
        };
        let effects = update(&mut c.state, Action::Tick(chrono::Utc::now()));
        c.run(effects);
        assert!(c.state.loaded, "the first tick loads the workspace");
        c
    }

    /// Sends effects and feeds replies back until nothing is in flight.
    fn run(&mut self, effects: Vec<Effect>) {
        self.send(effects);
        while self.state.busy() {
            let reply =
                (self.replies.recv_timeout(Duration::from_secs(60))).expect("a reply within 60 s");
            let more = update(&mut self.state, Action::Reply(reply));
            self.send(more);
        }
    }

    /// Carries out effects as the shell does: requests to the worker, copies kept.
    fn send(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Engine(req) => assert!(self.worker.send(req), "worker alive"),
                Effect::Copy(text) => self.copied.push(text),
                Effect::Cancel => {
                    d1ops::engine::interrupt_reads();
                }
            }
        }
    }

    fn press(&mut self, code: KeyCode) {
        let ev = KeyEvent::new(code, KeyModifiers::NONE);
        if let Some(action) = keymap::resolve(&self.state, &ev) {
            let effects = update(&mut self.state, action);
            self.run(effects);
        }
    }

    fn typed(&mut self, text: &str) {
        for c in text.chars() {
            self.press(KeyCode::Char(c));
        }
    }

    /// Filters the Releases list down to `id` so it is selected.
    fn select_release(&mut self, id: &str) {
        self.typed("2/");
        self.typed(id);
        self.press(KeyCode::Enter);
        assert_eq!(
            self.state.selected_release().map(|r| r.id.as_str()),
            Some(id)
        );
    }

    fn last_toast(&self) -> (ToastKind, String) {
        let t = self.state.toasts.last().expect("a toast");
        (t.kind, t.text.clone())
    }
}

fn state_of(f: &Fixture, id: &str) -> ReleaseState {
    open(f.root(), "carol").resolve(id).expect("release").state
}

#[test]
fn approve_then_promote_the_ready_release() {
    let f = populated();
    let (r2, r3) = (&f.ids[1], &f.ids[2]);
    let mut c = Console::open(&f, "bob");
    c.select_release(r3);

    // Approve with a note: Cancel is focused first, so Enter alone does nothing.
    c.press(KeyCode::Char('a'));
    c.typed("schema ok");
    c.press(KeyCode::Enter);
    assert!(
        c.state.dialog.is_none(),
        "Enter on Cancel closes the dialog"
    );
    assert_eq!(
        state_of(&f, r3),
        ReleaseState::Ready,
        "cancel did not approve"
    );
    c.press(KeyCode::Char('a'));
    c.typed("schema ok");
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    assert_eq!(c.last_toast().0, ToastKind::Success, "{:?}", c.last_toast());
    assert_eq!(state_of(&f, r3), ReleaseState::Approved);

    // Promote: the confirmation needs the id's last 4 characters.
    c.press(KeyCode::Char('p'));
    let Some(Dialog::Confirm(confirm)) = &c.state.dialog else {
        panic!("promote opens the confirmation");
    };
    let preview = confirm
        .preview
        .clone()
        .expect("preview loaded")
        .expect("preview ok");
    assert_eq!(preview.blocker, None);
    assert_eq!(preview.pending, vec!["0003_bio.sql".to_string()]);
    c.typed("zzzz");
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    assert!(
        c.state.dialog.is_some(),
        "a wrong code keeps the dialog open"
    );
    assert_eq!(state_of(&f, r3), ReleaseState::Approved);
    for _ in 0..4 {
        c.press(KeyCode::Backspace);
    }
    c.typed(&r3[22..].to_lowercase());
    c.press(KeyCode::Enter);
    assert!(c.state.dialog.is_none());
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Success, "{text}");
    assert!(text.contains("is live"), "{text}");

    assert_eq!(state_of(&f, r3), ReleaseState::Live);
    assert_eq!(state_of(&f, r2), ReleaseState::Superseded);
    let engine = open(f.root(), "carol");
    assert_eq!(
        engine
            .production()
            .expect("production")
            .active_release
            .as_deref(),
        Some(r3.as_str())
    );
    // The console refreshed after the action.
    assert_eq!(c.state.live_release(), Some(r3.as_str()));
}

#[test]
fn failing_promotion_shows_the_error_and_leaves_production_unchanged() {
    let f = failing();
    let (r1, r2) = (&f.ids[0], &f.ids[1]);
    let prod = f.root().join(".d1ops/db/production.sqlite");
    let before = std::fs::read(&prod).expect("production bytes");
    let mut c = Console::open(&f, "bob");
    c.select_release(r2);
    c.press(KeyCode::Char('p'));
    c.typed(&r2[22..]);
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Error);
    assert!(text.contains("failed and was rolled back"), "{text}");
    assert!(text.contains("UNIQUE constraint failed"), "{text}");

    assert_eq!(state_of(&f, r2), ReleaseState::Failed);
    assert_eq!(state_of(&f, r1), ReleaseState::Live);
    let engine = open(f.root(), "carol");
    assert_eq!(
        engine
            .production()
            .expect("production")
            .active_release
            .as_deref(),
        Some(r1.as_str())
    );
    let ledger: Vec<String> = engine
        .production_ledger()
        .expect("ledger")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(ledger, vec!["0001_users.sql".to_string()]);
    let conn = rusqlite::Connection::open(&prod).expect("open production");
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'users_email'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(indexes, 0, "the unique index was rolled back");
    drop(conn);
    assert_eq!(before.len(), std::fs::read(&prod).expect("bytes").len());

    // The failure record is in the release detail.
    c.press(KeyCode::Enter);
    let detail = c
        .state
        .detail
        .as_ref()
        .and_then(|d| d.data.as_ref())
        .expect("detail loaded");
    let failure = detail
        .detail
        .release
        .failure
        .as_ref()
        .expect("failure recorded");
    assert_eq!(failure.migration.as_deref(), Some("0002_unique_email.sql"));
}

#[test]
fn cleanup_deletes_exactly_the_listed_stale_previews() {
    let f = populated();
    let mut c = Console::open(&f, "bob");
    c.typed("1c");
    let Some(Dialog::Cleanup(dialog)) = &c.state.dialog else {
        panic!("c opens the cleanup dialog");
    };
    let listed: Vec<String> = match &dialog.items {
        Some(Ok(items)) => items.iter().map(|i| i.env.clone()).collect(),
        other => panic!("cleanup plan: {other:?}"),
    };
    assert_eq!(
        listed.len(),
        3,
        "R1, R2 and R4's previews are stale: {listed:?}"
    );
    for name in &listed {
        let db = f.root().join(format!(".d1ops/db/{name}.sqlite"));
        assert!(db.exists(), "{} exists before cleanup", db.display());
    }
    let before: Vec<String> = open(f.root(), "carol")
        .envs()
        .expect("envs")
        .into_iter()
        .map(|e| e.env.name)
        .collect();
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Success, "{text}");
    assert!(text.contains("Deleted 3 stale preview(s)"), "{text}");

    let after: Vec<String> = open(f.root(), "carol")
        .envs()
        .expect("envs")
        .into_iter()
        .map(|e| e.env.name)
        .collect();
    let deleted: Vec<String> = before
        .iter()
        .filter(|n| !after.contains(n))
        .cloned()
        .collect();
    let mut expected = listed.clone();
    expected.sort();
    let mut got = deleted;
    got.sort();
    assert_eq!(got, expected);
    for name in &listed {
        let db = f.root().join(format!(".d1ops/db/{name}.sqlite"));
        assert!(!db.exists(), "{} still exists", db.display());
    }
    assert!(
        after.iter().any(|n| n.contains(&f.ids[2].to_lowercase())),
        "the candidate's preview stays"
    );
    assert!(
        c.state
            .data
            .envs
            .iter()
            .all(|e| !listed.contains(&e.env.name)),
        "the console refreshed"
    );
}

#[test]
fn quit_and_back() {
    let f = populated();
    let mut c = Console::open(&f, "bob");
    c.typed("2");
    c.press(KeyCode::Enter);
    assert!(c.state.detail.is_some());
    c.typed("q");
    assert!(
        c.state.detail.is_none() && !c.state.quit,
        "q backs out of the detail first"
    );
    c.typed("q");
    assert!(c.state.quit);
}

#[test]
fn rollback_then_restore_from_the_console() {
    let f = populated();
    let (r1, r2) = (&f.ids[0], &f.ids[1]);
    let mut c = Console::open(&f, "carol");

    // R on the superseded release: the check runs on a copy, then the typed code confirms.
    c.select_release(r1);
    c.press(KeyCode::Char('R'));
    let Some(Dialog::Confirm(confirm)) = &c.state.dialog else {
        panic!("R opens the confirmation");
    };
    let preview = confirm.recovery.clone().expect("loaded").expect("ok");
    assert_eq!(preview.blocker, None, "{:?}", preview.lines);
    assert!(
        preview
            .lines
            .iter()
            .any(|l| l.contains("schema and data stay")),
        "{:?}",
        preview.lines
    );
    c.typed(&r1[22..]);
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Success, "{text}");
    assert_eq!(state_of(&f, r1), ReleaseState::Live);
    assert_eq!(state_of(&f, r2), ReleaseState::RolledBack);

    // S on R2: the loss report, then production goes back to before R2's migrations.
    c.press(KeyCode::Esc); // clear the filter
    c.select_release(r2);
    c.press(KeyCode::Char('S'));
    let Some(Dialog::Confirm(confirm)) = &c.state.dialog else {
        panic!("S opens the confirmation");
    };
    let preview = confirm.recovery.clone().expect("loaded").expect("ok");
    assert!(
        preview
            .lines
            .iter()
            .any(|l| l.contains("What would be lost")),
        "{:?}",
        preview.lines
    );
    assert!(
        preview.lines.iter().any(|l| l.contains("0002_posts.sql")),
        "{:?}",
        preview.lines
    );
    c.typed(&r2[22..]);
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Success, "{text}");
    assert_eq!(state_of(&f, r2), ReleaseState::Reverted);
    let ledger: Vec<String> =
        rusqlite::Connection::open(f.root().join(".d1ops/db/production.sqlite"))
            .expect("production")
            .prepare("SELECT name FROM d1_migrations ORDER BY id")
            .expect("ledger")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("names");
    assert_eq!(ledger, vec!["0001_users.sql".to_string()]);
}

#[test]
fn cleanup_from_capacity_empties_its_stale_list() {
    let f = populated();
    let mut c = Console::open(&f, "bob");
    c.typed("4");
    let stale = |c: &Console| match &c.state.capacity.data {
        Some(Ok(d)) => d.stale.len(),
        other => panic!("capacity data: {other:?}"),
    };
    let databases = |c: &Console| match &c.state.capacity.data {
        Some(Ok(d)) => d.usage.totals.last().map(|t| t.databases),
        other => panic!("capacity data: {other:?}"),
    };
    assert_eq!(stale(&c), 3, "three stale previews before cleanup");
    let before = databases(&c);
    c.typed("c");
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Success, "{text}");
    assert_eq!(stale(&c), 0, "the Capacity panel lists no deleted preview");
    assert!(
        databases(&c) < before,
        "the database count follows: {:?} → {:?}",
        before,
        databases(&c)
    );
    // A second `c` finds nothing, and the panel agrees.
    c.typed("c");
    let Some(Dialog::Cleanup(d)) = &c.state.dialog else {
        panic!("c opens the cleanup dialog");
    };
    assert!(matches!(&d.items, Some(Ok(items)) if items.is_empty()));
}

#[test]
fn palette_release_prefix_opens_that_release() {
    let f = populated();
    let mut c = Console::open(&f, "bob");
    let r3 = f.ids[2].clone();
    // The shortest prefix that names R3 alone.
    let prefix = (4..=r3.len())
        .map(|n| &r3[..n])
        .find(|p| f.ids.iter().filter(|id| id.starts_with(p)).count() == 1)
        .expect("a unique prefix")
        .to_string();
    c.typed(":rel");
    c.press(KeyCode::Tab);
    c.typed(&prefix.to_lowercase());
    c.press(KeyCode::Enter);
    assert_eq!(c.state.palette.as_ref().map(|p| p.input.clone()), None);
    assert_eq!(c.state.detail.as_ref().map(|d| d.id.clone()), Some(r3));
    assert!(
        c.state.detail.as_ref().is_some_and(|d| d.data.is_some()),
        "the release detail loaded"
    );
    // An ambiguous prefix says so and opens nothing.
    c.press(KeyCode::Esc);
    c.typed(":release 0");
    c.press(KeyCode::Enter);
    assert!(c.state.detail.is_none());
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Error);
    assert!(text.contains("releases start with 0"), "{text}");
}

#[test]
fn y_copies_the_selected_release_id_with_osc52() {
    let f = populated();
    let mut c = Console::open(&f, "bob");
    c.select_release(&f.ids[1]);
    c.typed("y");
    assert_eq!(c.copied, vec![f.ids[1].clone()]);
    let seq = d1ops::console::copy::osc52(&c.copied[0]);
    assert!(
        seq.starts_with("\x1b]52;c;") && seq.ends_with('\x07'),
        "{seq:?}"
    );
    assert!(seq.contains(&d1ops::console::copy::base64(f.ids[1].as_bytes())));
    let (_, text) = c.last_toast();
    assert!(text.contains("Copied the release id"), "{text}");
}

#[test]
fn read_only_keys_say_why_they_do_nothing() {
    let f = populated();
    let mut c = Console::open_as(&f, "bob", true);
    c.select_release(&f.ids[2]);
    for (key, what) in [
        ('a', "approve"),
        ('p', "promote"),
        ('R', "roll back to"),
        ('S', "restore before"),
        ('U', "undo last restore"),
    ] {
        c.typed(&key.to_string());
        assert!(c.state.dialog.is_none(), "{key} opened a dialog");
        let (_, text) = c.last_toast();
        assert_eq!(
            text,
            format!("read-only console: {what} is disabled (opened with --readonly)")
        );
    }
    c.press(KeyCode::Esc);
    c.typed("1c");
    assert!(c.state.dialog.is_none());
    assert!(c.last_toast().1.contains("clean up previews is disabled"));
}

#[test]
fn undo_the_restore_with_the_typed_word() {
    let f = populated();
    let r2 = &f.ids[1];
    let mut c = Console::open(&f, "carol");
    c.select_release(r2);
    c.press(KeyCode::Char('S'));
    c.typed(&r2[22..]);
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    assert_eq!(c.last_toast().0, ToastKind::Success, "{:?}", c.last_toast());
    assert_eq!(state_of(&f, r2), ReleaseState::Reverted);

    c.press(KeyCode::Char('U'));
    let Some(Dialog::Undo(u)) = &c.state.dialog else {
        panic!("U opens the undo confirmation");
    };
    let lines = u.preview.clone().expect("loaded").expect("ok").lines;
    assert!(
        lines.iter().any(|l| l.contains("What would be lost")),
        "{lines:?}"
    );
    // Confirm stays disabled until the word is typed.
    c.press(KeyCode::Tab);
    c.press(KeyCode::Enter);
    assert!(matches!(c.state.dialog, Some(Dialog::Undo(_))));
    assert_eq!(state_of(&f, r2), ReleaseState::Reverted);
    c.typed("undo");
    c.press(KeyCode::Enter);
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Success, "{text}");
    assert_eq!(state_of(&f, r2), ReleaseState::Live);
}

#[test]
fn shift_k_acknowledges_the_regressed_watch() {
    let f = populated();
    with_metrics(&f);
    let mut c = Console::open(&f, "carol");
    assert_eq!(c.state.alerts(), 1, "the live release's watch regressed");
    c.typed("!");
    assert!(c.state.alerts_open.is_some(), "! opens the alerts list");
    c.press(KeyCode::Enter);
    assert_eq!(c.state.tab, d1ops::console::state::Tab::Monitor);
    c.typed("K");
    let (kind, text) = c.last_toast();
    assert_eq!(kind, ToastKind::Success, "{text}");
    assert_eq!(
        c.state.alerts(),
        0,
        "an acknowledged watch no longer alerts"
    );
    c.typed("K");
    assert!(c.last_toast().1.contains("Nothing to acknowledge"));
}

#[test]
fn o_reorders_and_selects_the_top_row() {
    let f = populated();
    with_metrics(&f);
    let mut c = Console::open(&f, "bob");
    c.typed("3jj");
    assert_eq!(c.state.monitor.selected, 2);
    c.typed("o");
    assert!(matches!(c.state.monitor.order, TopBy::P95));
    assert_eq!(
        c.state.monitor.selected, 0,
        "the top row, not the old query"
    );
    let top = c.state.monitor.selected_query().map(|q| q.text.clone());
    let first = match &c.state.monitor.data {
        Some(Ok(d)) => d.top.first().map(|q| q.text.clone()),
        _ => None,
    };
    assert_eq!(top, first);
    assert!(
        c.state.monitor.selected_plan().is_some(),
        "its plan was read at once"
    );
}
