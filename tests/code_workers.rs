//! Worker targets (issue 14) against the D1 contract server's Workers endpoints: the preview
//! version is bound to the preview's database and not deployed; the first production deploy
//! creates the Worker with a script upload; later ones upload a version bound to
//! production's database and deploy it at 100%; rollback deploys the earlier release's
//! version again; a failure puts the previous version back.
mod cf_support;
mod common;

use std::sync::Arc;

use cf_support::cloudflare_ws;
use common::Ws;
use d1ops_testkit::d1_contract::{D1Server, Fault};

const SCRIPT: &str = "shop-api";

fn with_worker(ws: &Ws) {
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[target]]\nname = \"api\"\nkind = \"worker\"\nscript = \"{SCRIPT}\"\ncompatibility_date = \"2026-11-01\"\n"
    ));
    std::fs::write(&path, text).unwrap();
}

fn bundle(ws: &Ws, body: &str) -> String {
    let dir = ws.path().join("dist");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("worker.js");
    std::fs::write(
        &p,
        format!("export default {{ fetch() {{ return new Response({body:?}); }} }};\n"),
    )
    .unwrap();
    format!("api={}", p.display())
}

fn deploy(ws: &Ws, body: &str) -> (Option<i32>, serde_json::Value) {
    let spec = bundle(ws, body);
    let (code, out, err) = ws.run_as("alice", &["--json", "deploy", "--artifact", &spec]);
    let v = serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}\n{err}"));
    (code, v)
}

fn ship(ws: &Ws, body: &str) -> String {
    let (code, v) = deploy(ws, body);
    assert_eq!(code, Some(0), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    id
}

fn production_id(ws: &Ws) -> String {
    ws.cf.as_ref().unwrap().production_id.clone()
}

/// The live version (must take all the traffic).
fn live_version(server: &Arc<D1Server>) -> String {
    let live = server.live_deployment(SCRIPT).expect("a live deployment");
    assert_eq!(live.len(), 1, "{live:?}");
    assert!((live[0].1 - 100.0).abs() < 1e-9, "{live:?}");
    live[0].0.clone()
}

fn target_view(ws: &Ws, id: &str) -> serde_json::Value {
    ws.json(&["release", "show", id])["targets"][0].clone()
}

#[test]
fn worker_versions_are_bound_to_each_environments_database() {
    let (server, ws) = cloudflare_ws();
    server.set_workers_subdomain(Some("acme"));
    with_worker(&ws);
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );

    // First release: the Worker does not exist yet, so the preview step says why it has
    // no version, and the production deploy creates it.
    let (code, v) = deploy(&ws, "v1");
    assert_eq!(code, Some(0), "{v}");
    let check = common::check(&v, "code.preview");
    assert_eq!(check["status"], "skip", "{check}");
    assert!(
        check["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist yet"),
        "{check}"
    );
    assert!(server.worker_versions(SCRIPT).is_empty());
    let r1 = v["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &r1]);
    let out = ws.ok_as("bob", &["promote", &r1, "--yes"]);
    assert!(out.contains("created by a script upload"), "{out}");
    let v1 = live_version(&server);
    assert_eq!(
        server.version_d1_bindings(SCRIPT, &v1),
        vec![("DB".to_string(), production_id(&ws))]
    );
    assert_eq!(
        target_view(&ws, &r1)["production"]["version_id"],
        v1.as_str()
    );

    // Second release: a preview version bound to the preview's database, not deployed.
    ws.migration(
        "0002_posts.sql",
        "CREATE TABLE posts(id INTEGER PRIMARY KEY);",
    );
    let (code, v) = deploy(&ws, "v2");
    assert_eq!(code, Some(0), "{v}");
    let r2 = v["id"].as_str().unwrap().to_string();
    let t = target_view(&ws, &r2);
    assert_eq!(t["preview"]["status"], "succeeded", "{t}");
    let preview_version = t["preview"]["version_id"].as_str().unwrap().to_string();
    let url = t["preview"]["url"].as_str().unwrap_or_default();
    assert!(url.contains(&format!("-{SCRIPT}.acme.workers.dev")), "{t}");
    let preview_db = server
        .databases()
        .into_iter()
        .find(|(_, n)| n.contains(&r2.to_lowercase()))
        .map(|(id, _)| id)
        .expect("the preview database");
    assert_eq!(
        server.version_d1_bindings(SCRIPT, &preview_version),
        vec![("DB".to_string(), preview_db)]
    );
    assert_eq!(
        live_version(&server),
        v1,
        "a preview version is never deployed"
    );

    // Promote: a new version bound to production, live at 100%.
    ws.ok_as("bob", &["approve", &r2]);
    ws.ok_as("bob", &["promote", &r2, "--yes"]);
    let v2 = live_version(&server);
    assert_ne!(v2, v1);
    assert_ne!(v2, preview_version);
    assert_eq!(
        server.version_d1_bindings(SCRIPT, &v2),
        vec![("DB".to_string(), production_id(&ws))]
    );
    let envs = ws.json(&["envs"]);
    assert_eq!(envs[0]["code"][0]["version_id"], v2.as_str(), "{envs}");

    // Rollback: the earlier release's version, deployed again (no new upload).
    let versions_before = server.worker_versions(SCRIPT).len();
    ws.ok_as("bob", &["rollback", "--yes"]);
    assert_eq!(live_version(&server), v1);
    assert_eq!(server.worker_versions(SCRIPT).len(), versions_before);
    let envs = ws.json(&["envs"]);
    assert_eq!(envs[0]["code"][0]["release_id"], r1.as_str());
}

#[test]
fn a_failing_worker_deploy_leaves_the_previous_version_live() {
    let (server, ws) = cloudflare_ws();
    with_worker(&ws);
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let r1 = ship(&ws, "v1");
    let v1 = live_version(&server);
    ws.migration(
        "0002_posts.sql",
        "CREATE TABLE posts(id INTEGER PRIMARY KEY);",
    );
    let (code, v) = deploy(&ws, "v2");
    assert_eq!(code, Some(0), "{v}");
    let r2 = v["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &r2]);
    // Cloudflare refuses every deployment for a while (more than the retries).
    server.inject(Fault::Status {
        path_contains: "/deployments".into(),
        status: 500,
        retry_after_secs: None,
        times: 6,
    });
    let (code, _out, err) = ws.run_as("bob", &["promote", &r2, "--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("target api"), "{err}");
    server.clear_faults();
    assert_eq!(ws.release_state(&r2), "failed");
    let shown = ws.json(&["release", "show", &r2]);
    assert_eq!(shown["failure"]["stage"], "code");
    let envs = ws.json(&["envs"]);
    assert_eq!(envs[0]["active_release"], r1.as_str());
    // The revert ran once the API answered again, or the previous version never left.
    let live = server.live_deployment(SCRIPT).unwrap();
    assert_eq!(live, vec![(v1, 100.0)], "previous version live: {live:?}");
}

#[test]
fn a_lost_upload_answer_does_not_make_two_versions() {
    let (server, ws) = cloudflare_ws();
    with_worker(&ws);
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    ship(&ws, "v1");
    let before = server.worker_versions(SCRIPT).len();
    ws.migration(
        "0002_posts.sql",
        "CREATE TABLE posts(id INTEGER PRIMARY KEY);",
    );
    let (code, v) = deploy(&ws, "v2");
    assert_eq!(code, Some(0), "{v}");
    let r2 = v["id"].as_str().unwrap().to_string();
    let after_preview = server.worker_versions(SCRIPT).len();
    assert_eq!(after_preview, before + 1, "one preview version");
    ws.ok_as("bob", &["approve", &r2]);
    // The production upload answers 503 once: before uploading again the client looks the
    // version up by its tag (tests/workers_contract.rs covers an answer lost after the
    // upload landed), so exactly one production version is made.
    server.inject(Fault::Status {
        path_contains: "/versions".into(),
        status: 503,
        retry_after_secs: None,
        times: 1,
    });
    ws.ok_as("bob", &["promote", &r2, "--yes"]);
    assert_eq!(server.worker_versions(SCRIPT).len(), after_preview + 1);
}

/// A directory of modules is pinned as one bundle file and uploads as the same modules.
#[test]
fn a_directory_of_modules_ships_as_pinned() {
    let (server, ws) = cloudflare_ws();
    with_worker(&ws);
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let dir = ws.path().join("dist/api");
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(
        dir.join("index.js"),
        "import hello from './lib/hello.js';\nexport default { fetch() { return new Response(hello); } };\n",
    )
    .unwrap();
    std::fs::write(dir.join("lib/hello.js"), "export default 'hi';\n").unwrap();
    let spec = format!("api={}", dir.display());
    let (code, out, err) = ws.run_as("alice", &["--json", "deploy", "--artifact", &spec]);
    assert_eq!(code, Some(0), "{out}{err}");
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Later edits to the folder change nothing: the pinned bundle ships.
    std::fs::write(dir.join("lib/hello.js"), "export default 'edited';\n").unwrap();
    ws.ok_as("bob", &["approve", &id]);
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    let live = live_version(&server);
    let (main, modules) = server.version_modules(SCRIPT, &live).expect("modules");
    assert_eq!(main, "index.js");
    let names: Vec<&str> = modules.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"lib/hello.js"), "{names:?}");
    let hello = modules.iter().find(|m| m.0 == "lib/hello.js").unwrap();
    assert_eq!(hello.2, b"export default 'hi';\n".to_vec());
}

#[test]
fn only_a_worker_targets_artifact_may_be_a_directory() {
    let (_server, ws) = cloudflare_ws();
    with_worker(&ws);
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let dir = ws.path().join("dist/other");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = format!("other={}", dir.display());
    let (code, _out, err) = ws.run_as("alice", &["deploy", "--artifact", &spec]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("only a worker target's artifact may be a directory"),
        "{err}"
    );
}
