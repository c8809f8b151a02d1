//! The console's view of shipped code (issue 14): the release detail's Code sub-view after a
//! target failed in production (its output tail, the revert) and the Environments tab's CODE
//! column, as whole-screen snapshots from a real workspace (times fixed, ids masked).
mod console_support;

use console_support::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use d1ops::console::action::Action;
use d1ops::console::keymap;
use d1ops::console::state::{DetailTab, State, Tab};
use d1ops::console::update::update;
use d1ops::engine::{DeployRequest, Engine};

fn key(state: &mut State, engine: &mut Engine, ids: &[String], code: KeyCode) {
    let ev = KeyEvent::new(code, KeyModifiers::NONE);
    if let Some(action) = keymap::resolve(state, &ev) {
        let effects = update(state, action);
        run_effects(state, engine, effects);
    }
    fix_times(state, ids);
}

/// `normalize`, plus the code steps' own times.
fn fix_times(state: &mut State, ids: &[String]) {
    normalize(state, ids);
    let fixed = (now() - chrono::Duration::minutes(30)).to_rfc3339();
    if let Some(d) = state.detail.as_mut().and_then(|d| d.data.as_mut()) {
        for t in &mut d.detail.targets {
            for s in [t.preview.as_mut(), t.production.as_mut()]
                .into_iter()
                .flatten()
            {
                if s.deployed_at.is_some() {
                    s.deployed_at = Some(fixed.clone());
                }
            }
        }
    }
    for e in &mut state.data.envs {
        for c in &mut e.code {
            c.deployed_at = fixed.clone();
        }
    }
}

/// R1 live with its app code; R2's app deploy fails in production (exit 3 after a line of
/// output), so app goes back to R1's code.
fn shipped() -> Fixture {
    let mut f = empty();
    let root = f.root().to_path_buf();
    let config = root.join("d1ops.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        "\n[[target]]\nname = \"app\"\nkind = \"command\"\npreview = \"test -s \\\"$D1OPS_ARTIFACT_PATH\\\"\"\ndeploy = \"if grep -q FAIL \\\"$D1OPS_ARTIFACT_PATH\\\"; then echo 'health check: GET /healthz answered 503 after 30 s'; exit 3; fi\"\n",
    );
    std::fs::write(&config, text).expect("write config");
    migration(
        &root,
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    let dist = root.join("dist");
    std::fs::create_dir_all(&dist).expect("dist");
    let mut ids = Vec::new();
    for (n, body) in [(1, "export default 'v1';\n"), (2, "FAIL\n")] {
        let path = dist.join(format!("app-v{n}.js"));
        std::fs::write(&path, body).expect("artifact");
        let out = open(&root, "alice")
            .deploy(DeployRequest {
                label: Some(format!("app v{n}")),
                artifacts: vec![("app".into(), path)],
                ..Default::default()
            })
            .expect("deploy");
        open(&root, "bob").approve(&out.id, None).expect("approve");
        let promoted = open(&root, "alice").promote(&out.id);
        assert_eq!(promoted.is_ok(), n == 1, "{promoted:?}");
        ids.push(out.id);
    }
    f.ids = ids;
    f
}

#[test]
fn code_sub_view_and_environments_code_column() {
    let f = shipped();
    let (mut state, mut engine) = loaded(&f, false);
    fix_times(&mut state, &f.ids);
    update(&mut state, Action::GoTab(Tab::Environments));
    for (w, h) in [(80, 24), (120, 40)] {
        let screen = render(&mut state, &f.ids, w, h);
        assert!(screen.contains("CODE") || w < 100, "{screen}");
        insta::assert_snapshot!(format!("code_environments_{w}x{h}"), screen);
    }
    update(&mut state, Action::GoTab(Tab::Releases));
    // R2 (the failed one) is the newest: first row.
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    while state
        .detail
        .as_ref()
        .is_some_and(|d| d.tab != DetailTab::Code)
    {
        key(&mut state, &mut engine, &f.ids, KeyCode::Tab);
    }
    for (w, h) in [(60, 20), (80, 24), (120, 40)] {
        let screen = render(&mut state, &f.ids, w, h);
        assert!(
            screen.contains("answered 503"),
            "the output tail is shown:\n{screen}"
        );
        insta::assert_snapshot!(format!("code_detail_failed_{w}x{h}"), screen);
    }
}

/// `:halt ID` opens the rollout abort confirmation (typed code), and the engine's answer
/// lands as a toast: here there is no rollout in progress to abort.
#[test]
fn the_palette_drives_a_worker_rollout() {
    let f = shipped();
    let (mut state, mut engine) = loaded(&f, false);
    let r1 = f.ids[0].clone();
    key(&mut state, &mut engine, &f.ids, KeyCode::Char(':'));
    for c in format!("halt {r1}").chars() {
        key(&mut state, &mut engine, &f.ids, KeyCode::Char(c));
    }
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    let screen = render(&mut state, &f.ids, 120, 40);
    assert!(screen.contains("Abort the rollout of"), "{screen}");
    for c in r1[22..].chars() {
        key(&mut state, &mut engine, &f.ids, KeyCode::Char(c));
    }
    key(&mut state, &mut engine, &f.ids, KeyCode::Tab);
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    let toast = state
        .toasts
        .last()
        .map(|t| t.text.clone())
        .unwrap_or_default();
    assert!(
        toast.contains("Aborting the rollout") && toast.contains("no rollout"),
        "the engine's refusal is shown: {toast}"
    );
    assert!(
        state.dialog.is_none(),
        "the dialog closed once the engine answered"
    );
}

/// What D1 could not answer reads as unknown (`?`, `unknown`, the reason in red), and a
/// database's read replication mode gets a column once any database reports one (issue 15
/// items 2 and 8; the data as the engine's `EnvView` carries it on the Cloudflare backend).
#[test]
fn environments_show_unreadable_databases_and_read_replication() {
    let f = shipped();
    let (mut state, _engine) = loaded(&f, false);
    update(&mut state, Action::GoTab(Tab::Environments));
    let plain = render(&mut state, &f.ids, 160, 20);
    assert!(!plain.contains("REPLICAS"), "{plain}");
    state.data.envs[0].read_replication = Some("auto".into());
    state.data.envs[1].unreadable = Some("HTTP 401: the API token was refused".into());
    let screen = render(&mut state, &f.ids, 160, 20);
    assert!(screen.contains("REPLICAS"), "{screen}");
    assert!(screen.contains("auto"), "{screen}");
    let row = (screen.lines())
        .find(|l| l.contains("unreadable:"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(row.contains("unknown") && row.contains('?'), "{row}");
}

/// Issue 15 item 12 in the console: while a request runs, the engine's stage reports reach
/// the header beside the request's name; the answer clears them.
#[test]
fn the_header_names_the_running_stage() {
    use d1ops::console::action::Reply;
    let f = shipped();
    let (mut state, _engine) = loaded(&f, false);
    state.in_flight.push_back("promoting".into());
    state.in_flight_writes.push_back(true);
    update(
        &mut state,
        Action::Reply(Reply::Progress("apply 3/10 migrations".into())),
    );
    let screen = render(&mut state, &f.ids, 160, 20);
    let header = screen.lines().next().unwrap_or_default().to_string();
    assert!(
        header.contains("promoting: apply 3/10 migrations"),
        "{header}"
    );
    assert_eq!(state.in_flight.len(), 1, "a stage report is not an answer");
    update(
        &mut state,
        Action::Reply(Reply::Outcome {
            ok: true,
            text: "done".into(),
        }),
    );
    assert!(state.stage.is_none());
    assert!(
        !state.in_flight.iter().any(|l| l == "promoting"),
        "answered: {:?}",
        state.in_flight
    );
}

/// The promote confirmation says which targets' code ships after the migrations.
#[test]
fn the_promote_dialog_names_the_code_that_ships() {
    let mut f = shipped();
    let root = f.root().to_path_buf();
    let path = root.join("dist/app-v3.js");
    std::fs::write(&path, "export default 'v3';\n").expect("artifact");
    let out = open(&root, "alice")
        .deploy(DeployRequest {
            label: Some("app v3".into()),
            artifacts: vec![("app".into(), path)],
            ..Default::default()
        })
        .expect("deploy");
    open(&root, "bob").approve(&out.id, None).expect("approve");
    f.ids.push(out.id.clone());
    let (mut state, mut engine) = loaded(&f, false);
    key(&mut state, &mut engine, &f.ids, KeyCode::Char(':'));
    for c in format!("promote {}", out.id).chars() {
        key(&mut state, &mut engine, &f.ids, KeyCode::Char(c));
    }
    key(&mut state, &mut engine, &f.ids, KeyCode::Enter);
    let screen = render(&mut state, &f.ids, 120, 40);
    assert!(
        screen.contains("Then ships its code, in order: app (command)"),
        "{screen}"
    );
}
