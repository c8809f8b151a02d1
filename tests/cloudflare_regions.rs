//! Where queries ran, against the D1 contract server: an environment's requests split by
//! D1's `servedByRegion` (a read replica's region beside the primary's), read live within the
//! GraphQL budget, the primary told by a REST query's `meta`. One test in its own binary: it
//! opens the engine in-process, which reads the API base and token from the environment.
mod cf_support;
mod common;

use std::time::Duration;

use common::Ws;
use d1ops::cloudflare::{ApiToken, Client, Settings};
use d1ops_testkit::d1_contract::D1Server;

#[test]
fn the_monitor_can_split_requests_by_the_region_that_served_them() {
    let server = std::sync::Arc::new(D1Server::start());
    let production = server.create_database("app-production");
    let ws = Ws::on_cloudflare(cf_support::side(&server, &production));
    ws.ok(&["query", "production", "SELECT 1"]);
    let now = chrono::Utc::now();
    server.record_history_from(
        "ENAM",
        &production,
        now - chrono::Duration::minutes(2),
        "SELECT 2",
        4,
        3.0,
        1,
    );

    // The read itself.
    let client = Client::new(Settings {
        base: server.base(),
        account_id: server.account_id().to_string(),
        token: ApiToken::new(server.token()).unwrap(),
        timeout: Duration::from_secs(10),
        retries: 0,
        backoff: Duration::from_millis(10),
    })
    .unwrap();
    let split = d1ops::engine::analytics::regions::d1::regions(
        &client,
        &production,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::minutes(1),
    )
    .unwrap();
    assert_eq!(split.note, None, "{split:?}");
    let enam = split.regions.iter().find(|r| r.region == "ENAM").unwrap();
    assert_eq!((enam.count, enam.read_queries), (4, 4), "{split:?}");
    assert_eq!(enam.p50_ms, Some(3.0));
    assert!(
        split.regions.iter().any(|r| r.region == "WEUR"),
        "{split:?}"
    );

    // Through the engine: the primary is marked, the budget is counted.
    for (k, v) in ws.env() {
        // SAFETY: this binary runs this one test; no other thread reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
    let engine = d1ops::engine::Engine::open(
        ws.path(),
        d1ops::engine::EngineOptions {
            actor: Some("alice".into()),
            readonly: true,
        },
    )
    .unwrap();
    let split = engine
        .region_split("production", chrono::Duration::hours(1))
        .unwrap()
        .expect("a split on the cloudflare backend");
    assert_eq!(split.primary_region.as_deref(), Some("WEUR"), "{split:?}");
    let primary: Vec<&str> = (split.regions.iter())
        .filter(|r| r.primary)
        .map(|r| r.region.as_str())
        .collect();
    assert_eq!(primary, ["WEUR"], "{split:?}");
    assert!(
        split
            .regions
            .iter()
            .any(|r| r.region == "ENAM" && !r.primary),
        "{split:?}"
    );
    let graphql = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/graphql"))
        .count();
    assert_eq!(graphql, 2, "one request per read");

    // On the command line: `monitor --by-region` adds the split (JSON `regions`, a table on
    // screen); plain `monitor` asks for nothing more.
    assert!(ws.json(&["monitor"]).get("regions").is_none());
    let v = ws.json(&["monitor", "--window", "1h", "--by-region"]);
    let regions = v["regions"]["regions"]
        .as_array()
        .expect("regions in monitor --json");
    assert!(
        regions
            .iter()
            .any(|r| r["region"] == "ENAM" && r["primary"] == false),
        "{v}"
    );
    let out = ws.ok(&["monitor", "--window", "1h", "--by-region"]);
    assert!(out.contains("by region (primary WEUR)"), "{out}");
    assert!(out.contains("replica"), "{out}");
}
