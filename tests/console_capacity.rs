//! Issue 16's check in the console: with a plan whose daily rows-read limit today's traffic
//! crossed, the Capacity tab shows the limit exceeded (red, since when, what it means) and
//! the header's alert count includes it. Real workspace, real queries, frozen clock.
mod console_support;

use console_support::*;
use d1ops::console::action::Action;
use d1ops::console::state::Tab;
use d1ops::console::update::update;
use d1ops::engine::PRODUCTION;
use d1ops::engine::observe::ExecuteOptions;

#[test]
fn an_exceeded_limit_is_red_and_counted_as_an_alert() {
    let mut f = empty();
    let root = f.root().to_path_buf();
    let config = root.join("d1ops.toml");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("plan = \"d1-free\"", "plan = \"tiny\"");
    std::fs::write(
        &config,
        format!("{text}\n[plans.tiny]\ndatabase_size_bytes = 10000000\nrows_read_per_day = 100\nrows_written_per_day = 1000000\n"),
    )
    .expect("write config");
    migration(
        &root,
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) INSERT INTO users (email) SELECT 'u' || x FROM c;\n",
    );
    let r1 = deploy(&root, "users");
    approve_and_promote(&root, &r1);
    f.ids = vec![r1];
    // Today's traffic: full scans, 50 rows each, past the plan's 100 rows a day.
    let engine = open(&root, "alice");
    for _ in 0..4 {
        engine
            .execute(
                PRODUCTION,
                "SELECT email FROM users WHERE email LIKE '%9'",
                &[],
                ExecuteOptions::default(),
            )
            .expect("query");
    }
    drop(engine);
    let (mut state, mut engine) = loaded(&f, false);
    let effects = update(&mut state, Action::GoTab(Tab::Capacity));
    run_effects(&mut state, &mut engine, effects);
    normalize(&mut state, &f.ids);
    let screen = render(&mut state, &f.ids, 120, 40);
    assert!(screen.contains("exceeded"), "{screen}");
    let header = screen.lines().next().unwrap_or_default();
    assert!(header.contains("alert"), "the header counts it: {header}");
    insta::assert_snapshot!("capacity_exceeded_120x40", screen);
    let small = render(&mut state, &f.ids, 80, 24);
    assert!(small.contains("exceeded"), "{small}");
    insta::assert_snapshot!("capacity_exceeded_80x24", small);
}
