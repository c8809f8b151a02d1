//! Full-frame console draw at 120×40 with 10,000 releases and 200 environments (target
//! < 2 ms). The state is built from model structs directly: no database involved.
use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use d1ops::console::action::{Action, Reply, Snapshot};
use d1ops::console::state::{Info, State, Tab};
use d1ops::console::{update::update, views};
use d1ops::engine::EnvView;
use d1ops::model::{EnvKind, Environment, Release, ReleaseState, Verdict};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn release(n: usize) -> Release {
    let states = [
        ReleaseState::Superseded,
        ReleaseState::Failed,
        ReleaseState::Abandoned,
        ReleaseState::Ready,
    ];
    Release {
        id: format!("01BENCH{n:019}"),
        state: states[n % states.len()],
        author: ["alice", "bob", "carol"][n % 3].into(),
        label: Some(format!("change number {n}")),
        commit: Some(format!("{n:040x}")),
        supersedes: None,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
        verdict: Some(if n.is_multiple_of(5) {
            Verdict::Blocked
        } else {
            Verdict::Ready
        }),
        preview_env: None,
        base_fingerprint: None,
        failure: None,
        root_cause: None,
        guardrail: None,
        promoted_at: None,
        promoted_by: None,
        recovery_snapshot: None,
        pending_count: (n % 4) as u32,
    }
}

fn env(n: usize) -> EnvView {
    let kind = if n == 0 {
        EnvKind::Production
    } else {
        EnvKind::Preview
    };
    EnvView {
        env: Environment {
            name: if n == 0 {
                "production".into()
            } else {
                format!("preview-01bench{n:019}")
            },
            kind,
            database_id: Some(format!("db{n}")),
            active_release: None,
            release_id: Some(format!("01BENCH{n:019}")),
            base_fingerprint: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            last_activity_at: "2026-01-01T06:00:00.000Z".into(),
            deleted_at: None,
        },
        database: Some(format!("/w/.d1ops/db/db{n}.sqlite")),
        size_bytes: Some(4096 * (n as u64 + 7)),
        schema_head: Some(format!("{:04}_migration.sql", n % 90)),
        applied: n % 90,
        stale: n
            .is_multiple_of(3)
            .then(|| "release is superseded".to_string()),
        release_state: Some("superseded".into()),
        read_replication: None,
        unreadable: None,
        code: Vec::new(),
    }
}

fn big_state() -> State {
    let now = Utc
        .with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .expect("time");
    let info = Info {
        workspace: "~/bench".into(),
        backend: "local".into(),
        ..Info::default()
    };
    let mut state = State::new(info, now, 120, 40);
    let snap = Snapshot {
        releases: (0..10_000).map(release).collect(),
        envs: (0..200).map(env).collect(),
        ..Default::default()
    };
    state.in_flight.push_back("refreshing".into());
    update(
        &mut state,
        Action::Reply(Reply::Snapshot(Ok(Box::new(snap)))),
    );
    state
}

fn bench(c: &mut Criterion) {
    let mut state = big_state();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    for (name, tab) in [
        ("releases", Tab::Releases),
        ("environments", Tab::Environments),
    ] {
        update(&mut state, Action::GoTab(tab));
        update(&mut state, Action::Bottom);
        c.bench_function(&format!("console_draw_{name}_10k_120x40"), |b| {
            b.iter(|| {
                // A fresh back buffer each time: the whole frame is drawn and diffed.
                terminal.clear().expect("clear");
                terminal.draw(|f| views::draw(f, &state)).expect("draw");
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
