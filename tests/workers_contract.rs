//! The Workers versions/deployments client (`d1ops_cloudflare::workers`) against the contract
//! server's Workers endpoints: a version upload to a Worker that does not exist yet, the
//! script upload that creates it, D1 bindings, 100% and 10/90 deployments, refused splits,
//! 429 and 5xx retries, a lost upload answer found again by its tag, preview URLs, and
//! reading bundles from disk.
use std::path::Path;
use std::time::Duration;

use d1ops::cloudflare::workers::{Binding, VersionSpec, WorkerBundle, WorkersError};
use d1ops::cloudflare::{ApiToken, Client, Settings};
use d1ops_testkit::d1_contract::{D1Server, Fault};
use serde_json::json;

const WORKER: &str = "export default { async fetch(req, env) { return new Response('ok'); } };\n";

fn client_with(server: &D1Server, timeout: Duration) -> Client {
    Client::new(Settings {
        base: server.base(),
        account_id: server.account_id().to_string(),
        token: ApiToken::new(server.token()).unwrap(),
        timeout,
        retries: 3,
        backoff: Duration::from_millis(10),
    })
    .unwrap()
}

fn client(server: &D1Server) -> Client {
    client_with(server, Duration::from_secs(10))
}

fn bundle() -> WorkerBundle {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worker.mjs");
    std::fs::write(&file, WORKER).unwrap();
    WorkerBundle::read(&file, None).unwrap()
}

fn spec(db: &str, tag: &str) -> VersionSpec {
    VersionSpec {
        main_module: "worker.mjs".into(),
        compatibility_date: "2025-06-01".into(),
        compatibility_flags: vec!["nodejs_compat".into()],
        bindings: vec![Binding::D1 {
            name: "DB".into(),
            id: db.into(),
        }],
        message: format!("release {tag}"),
        tag: tag.into(),
    }
}

/// A server with a production database and the Worker `app` created by a script upload.
fn with_worker() -> (D1Server, Client, String, String) {
    let server = D1Server::start();
    let db = server.create_database("app-production");
    let c = client(&server);
    let first = c.upload_script("app", &bundle(), &spec(&db, "r0")).unwrap();
    (server, c, db, first.id)
}

#[test]
fn a_version_for_a_worker_that_does_not_exist_is_a_missing_worker_error() {
    let server = D1Server::start();
    let db = server.create_database("app-production");
    let err = client(&server)
        .upload_version("app", &bundle(), &spec(&db, "r1"))
        .unwrap_err();
    assert!(err.is_missing_worker(), "{err:?}");
    assert!(
        err.to_string().contains("Worker 'app' does not exist yet"),
        "{err}"
    );
    assert!(server.worker_versions("app").is_empty());
}

#[test]
fn the_script_upload_creates_the_worker_live_at_one_hundred_percent() {
    let (server, c, db, first) = with_worker();
    assert_eq!(server.worker_versions("app"), vec![first.clone()]);
    assert_eq!(
        server.live_deployment("app").unwrap(),
        [(first.clone(), 100.0)]
    );
    let live = c.current_deployment("app").unwrap().unwrap();
    assert_eq!(live.sole_version(), Some(first.as_str()));
    assert_eq!(live.message.as_deref(), Some("release r0"));
    let v = c.get_version("app", &first).unwrap();
    assert_eq!(v.tag.as_deref(), Some("r0"));
    assert_eq!(v.d1_bindings, [("DB".to_string(), db)]);
    let (main, modules) = server.version_modules("app", &first).unwrap();
    assert_eq!(main, "worker.mjs");
    assert_eq!(modules.len(), 1);
    assert_eq!(modules[0].1, "application/javascript+module");
    assert_eq!(modules[0].2, WORKER.as_bytes());
}

#[test]
fn a_version_records_its_d1_binding_and_is_not_deployed() {
    let (server, c, _, first) = with_worker();
    let preview_db = server.create_database("app-preview-r1");
    let v = c
        .upload_version("app", &bundle(), &spec(&preview_db, "r1"))
        .unwrap();
    assert_eq!(v.tag.as_deref(), Some("r1"));
    assert_eq!(v.message.as_deref(), Some("release r1"));
    assert_eq!(v.number, Some(2));
    assert_eq!(v.d1_bindings, [("DB".to_string(), preview_db.clone())]);
    assert_eq!(
        server.version_d1_bindings("app", &v.id),
        [("DB".to_string(), preview_db)]
    );
    // Uploaded, not live.
    assert_eq!(server.live_deployment("app").unwrap(), [(first, 100.0)]);
    let listed = c.list_versions("app").unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, v.id, "newest first");
    assert_eq!(
        c.find_version_by_tag("app", "r1").unwrap().unwrap().id,
        v.id
    );
    assert_eq!(c.find_version_by_tag("app", "nope").unwrap(), None);
    assert_eq!(c.find_version_by_tag("other", "r1").unwrap(), None);
}

#[test]
fn a_binding_to_a_database_the_account_does_not_have_is_refused() {
    let (server, c, _, _) = with_worker();
    let err = c
        .upload_version("app", &bundle(), &spec("no-such-db", "r1"))
        .unwrap_err();
    assert!(matches!(err, WorkersError::Cloudflare(_)), "{err:?}");
    assert!(err.to_string().contains("no-such-db"), "{err}");
    assert_eq!(server.worker_versions("app").len(), 1);
}

#[test]
fn deployments_move_traffic_whole_or_split() {
    let (server, c, db, first) = with_worker();
    let v = c
        .upload_version("app", &bundle(), &spec(&db, "r1"))
        .unwrap();
    let d = c
        .create_deployment(
            "app",
            &[(v.id.clone(), 10.0), (first.clone(), 90.0)],
            "r1 at 10%",
        )
        .unwrap();
    assert_eq!(d.versions, [(v.id.clone(), 10.0), (first.clone(), 90.0)]);
    assert_eq!(d.sole_version(), None);
    assert_eq!(
        server.live_deployment("app").unwrap(),
        [(v.id.clone(), 10.0), (first.clone(), 90.0)]
    );
    let live = c.current_deployment("app").unwrap().unwrap();
    assert_eq!(live.id, d.id);
    assert_eq!(live.message.as_deref(), Some("r1 at 10%"));

    c.create_deployment("app", &[(v.id.clone(), 100.0)], "r1 live")
        .unwrap();
    let live = c.current_deployment("app").unwrap().unwrap();
    assert_eq!(live.sole_version(), Some(v.id.as_str()));
}

#[test]
fn splits_that_do_not_add_up_are_refused_by_the_client_and_the_server() {
    let (server, c, db, first) = with_worker();
    let v = c
        .upload_version("app", &bundle(), &spec(&db, "r1"))
        .unwrap();
    let before = server.requests().len();
    let err = c
        .create_deployment("app", &[(v.id.clone(), 10.0), (first.clone(), 80.0)], "bad")
        .unwrap_err();
    assert!(
        matches!(err, WorkersError::InvalidDeployment { .. }),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), before, "nothing was sent");

    // The server refuses it too (for a client that does not check).
    let url = format!(
        "{}/accounts/{}/workers/scripts/app/deployments",
        server.base(),
        server.account_id()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for body in [
        json!({"strategy": "percentage", "versions": [{"version_id": v.id, "percentage": 10}, {"version_id": first, "percentage": 80}]}),
        json!({"strategy": "percentage", "versions": [{"version_id": "nope", "percentage": 100}]}),
        json!({"strategy": "gradual", "versions": [{"version_id": v.id, "percentage": 100}]}),
    ] {
        let mut resp = agent
            .post(&url)
            .header("authorization", &format!("Bearer {}", server.token()))
            .send_json(&body)
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{body}");
        let answer: serde_json::Value = resp.body_mut().read_json().unwrap();
        assert_eq!(answer["success"], false);
        assert_eq!(answer["errors"][0]["code"], 10021);
    }
    assert_eq!(server.live_deployment("app").unwrap(), [(first, 100.0)]);
}

#[test]
fn rate_limits_and_server_errors_on_an_upload_are_retried_without_duplicates() {
    let (server, c, db, _) = with_worker();
    server.inject(Fault::Status {
        path_contains: "/workers/scripts/app/versions".into(),
        status: 429,
        retry_after_secs: None,
        times: 1,
    });
    let v = c
        .upload_version("app", &bundle(), &spec(&db, "r1"))
        .unwrap();
    assert_eq!(v.tag.as_deref(), Some("r1"));
    // A 503 before the work: the tag is looked up, not found, and the upload repeated.
    server.inject(Fault::Status {
        path_contains: "/workers/scripts/app/versions".into(),
        status: 503,
        retry_after_secs: None,
        times: 1,
    });
    let w = c
        .upload_version("app", &bundle(), &spec(&db, "r2"))
        .unwrap();
    assert_eq!(w.tag.as_deref(), Some("r2"));
    assert_eq!(server.worker_versions("app").len(), 3);
    let posts = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/versions"))
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(posts, [429, 200, 503, 200]);
}

#[test]
fn a_lost_upload_answer_is_found_by_its_tag_instead_of_uploading_twice() {
    let server = D1Server::start();
    let db = server.create_database("app-production");
    let c = client_with(&server, Duration::from_millis(1500));
    c.upload_script("app", &bundle(), &spec(&db, "r0")).unwrap();
    server.inject(Fault::DelayAnswer {
        path_contains: "/workers/scripts/app/versions".into(),
        millis: 2500,
        times: 1,
    });
    let v = c
        .upload_version("app", &bundle(), &spec(&db, "r1"))
        .unwrap();
    assert_eq!(v.tag.as_deref(), Some("r1"));
    let versions = server.worker_versions("app");
    assert_eq!(versions.len(), 2, "one upload landed, none repeated");
    assert_eq!(versions[1], v.id);
    let posts = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/versions"))
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn a_preview_url_needs_a_workers_dev_subdomain() {
    let (server, c, db, _) = with_worker();
    let v = c
        .upload_version("app", &bundle(), &spec(&db, "r1"))
        .unwrap();
    assert!(v.has_preview);
    assert_eq!(v.preview_url, None, "no subdomain registered");
    server.set_workers_subdomain(Some("acme"));
    let w = c
        .upload_version("app", &bundle(), &spec(&db, "r2"))
        .unwrap();
    assert_eq!(
        w.preview_url.as_deref(),
        Some(format!("https://{}-app.acme.workers.dev", &w.id[..8]).as_str())
    );
}

#[test]
fn the_token_is_not_in_any_error() {
    let server = D1Server::start();
    let c = client(&server);
    let err = c
        .upload_version("app", &bundle(), &spec("x", "r1"))
        .unwrap_err();
    assert!(!err.to_string().contains(server.token()));
    assert!(!format!("{err:?}").contains(server.token()));
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn bundles_are_read_from_a_file_or_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // One file: one ES module, named after it.
    write(d, "single/worker.js", WORKER);
    let b = WorkerBundle::read(&d.join("single/worker.js"), None).unwrap();
    assert_eq!(b.main_module, "worker.js");
    assert_eq!(b.modules.len(), 1);
    assert!(WorkerBundle::read(&d.join("single/worker.js"), Some("other.js")).is_err());

    // A directory: every module, nested names with `/`, index.js by default.
    write(d, "multi/index.js", "import { x } from './lib/x.mjs';\n");
    write(d, "multi/lib/x.mjs", "export const x = 1;\n");
    write(d, "multi/lib/x.mjs.map", "{}");
    let b = WorkerBundle::read(&d.join("multi"), None).unwrap();
    assert_eq!(b.main_module, "index.js");
    let names: Vec<(&str, &str)> = b
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m.content_type.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("index.js", "application/javascript+module"),
            ("lib/x.mjs", "application/javascript+module"),
            ("lib/x.mjs.map", "application/source-map"),
        ]
    );
    let b = WorkerBundle::read(&d.join("multi"), Some("lib/x.mjs")).unwrap();
    assert_eq!(b.main_module, "lib/x.mjs");

    let refused = |path: &Path, main: Option<&str>, says: &str| {
        let err = WorkerBundle::read(path, main).unwrap_err();
        assert!(matches!(err, WorkersError::Bundle { .. }), "{err:?}");
        assert!(err.to_string().contains(says), "{err}");
    };
    refused(&d.join("multi"), Some("main.js"), "'main.js' is not in it");
    refused(
        &d.join("multi"),
        Some("lib/x.mjs.map"),
        "not a JavaScript module",
    );
    write(d, "noindex/app.js", WORKER);
    refused(&d.join("noindex"), None, "name the main module");
    std::fs::create_dir_all(d.join("empty")).unwrap();
    refused(&d.join("empty"), None, "holds no module");
    write(d, "odd/index.js", WORKER);
    write(d, "odd/README.md", "hi");
    refused(&d.join("odd"), None, "not a Worker module");
    write(d, "text.txt", "hi");
    refused(&d.join("text.txt"), None, "must be an ES module");
    refused(&d.join("missing"), None, "missing");
    #[cfg(unix)]
    {
        write(d, "linked/index.js", WORKER);
        std::os::unix::fs::symlink(d.join("single/worker.js"), d.join("linked/other.js")).unwrap();
        refused(&d.join("linked"), None, "not a regular file");
    }
    let big = "x".repeat(6 * 1024 * 1024);
    write(d, "big/index.js", &big);
    write(d, "big/more.js", &big);
    refused(&d.join("big"), None, "larger than");
}

#[test]
fn a_lost_script_upload_answer_is_checked_against_the_live_version_first() {
    let server = D1Server::start();
    let db = server.create_database("app-production");
    let c = client_with(&server, Duration::from_millis(1500));
    server.inject(Fault::DelayAnswer {
        path_contains: "/workers/scripts/app".into(),
        millis: 2500,
        times: 1,
    });
    let v = c.upload_script("app", &bundle(), &spec(&db, "r0")).unwrap();
    assert_eq!(v.tag.as_deref(), Some("r0"));
    assert_eq!(server.worker_versions("app"), vec![v.id.clone()]);
    assert_eq!(server.live_deployment("app").unwrap(), [(v.id, 100.0)]);
    let puts = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(puts, 1);
}

#[test]
fn an_unknown_version_is_not_a_missing_worker() {
    let (_server, c, _, _) = with_worker();
    let err = c.get_version("app", "no-such-version").unwrap_err();
    assert!(!err.is_missing_worker(), "{err:?}");
    assert!(err.to_string().contains("not found"), "{err}");
    let err = c.get_version("other", "no-such-version").unwrap_err();
    assert!(err.is_missing_worker(), "{err:?}");
}
