//! Releases ship their code (issue 14): `command` targets run as real processes with the
//! documented environment; the preview step is the gate check `code.preview`; promote ships
//! code only after the migrations committed, in config order, and a failing target puts the
//! earlier ones back (exit 5, previous release still active, schema as `on_code_failure`
//! says); rollback deploys the earlier release's pinned code; a promotion killed inside a
//! code step is settled by the next command.
mod common;

use std::path::PathBuf;

use common::Ws;

/// The deploy script of a target: copies the pinned artifact to `live/<target>.js`, records
/// its environment in `live/<target>.env` and appends to `live/history`. An artifact holding
/// `FAIL` fails the step after printing a line; `SLOW` sleeps.
fn script(action: &str) -> String {
    // A preview never touches what production runs.
    let suffix = if action == "preview" { ".preview" } else { "" };
    format!(
        "mkdir -p live && echo \"{action} $D1OPS_TARGET $D1OPS_RELEASE_ID\" >> live/history && \
         if grep -q FAIL \"$D1OPS_ARTIFACT_PATH\"; then echo \"$D1OPS_TARGET exploded during {action}\"; exit 7; fi && \
         if grep -q SLOW \"$D1OPS_ARTIFACT_PATH\"; then sleep 30; fi && \
         cp \"$D1OPS_ARTIFACT_PATH\" live/$D1OPS_TARGET{suffix}.js && env | grep '^D1OPS_' | sort > live/$D1OPS_TARGET.{action}.env"
    )
}

fn with_targets(ws: &Ws, targets: &[&str], extra: &str) {
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for t in targets {
        text.push_str(&format!(
            "\n[[target]]\nname = \"{t}\"\nkind = \"command\"\npreview = '''{}'''\ndeploy = '''{}'''\nrollback = '''{}'''\ntimeout = \"20s\"\n{extra}\n",
            script("preview"),
            script("deploy"),
            script("rollback"),
        ));
    }
    std::fs::write(&path, text).unwrap();
}

fn artifact(ws: &Ws, name: &str, body: &str) -> PathBuf {
    let dir = ws.path().join("dist");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}.js"));
    std::fs::write(&p, body).unwrap();
    p
}

/// `deploy --json --artifact …` → (exit code, JSON).
fn deploy(ws: &Ws, artifacts: &[(&str, &str)]) -> (Option<i32>, serde_json::Value) {
    let specs: Vec<String> = artifacts
        .iter()
        .map(|(n, body)| format!("{n}={}", artifact(ws, n, body).display()))
        .collect();
    let mut args = vec!["--json", "deploy"];
    for s in &specs {
        args.push("--artifact");
        args.push(s);
    }
    let (code, out, err) = ws.run_as("alice", &args);
    let v = serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}\n{err}"));
    (code, v)
}

fn ship(ws: &Ws, artifacts: &[(&str, &str)]) -> String {
    let (code, v) = deploy(ws, artifacts);
    assert_eq!(code, Some(0), "deploy blocked: {v}");
    let id = v["id"].as_str().unwrap().to_string();
    ws.ok_as("bob", &["approve", &id]);
    ws.ok_as("bob", &["promote", &id, "--yes"]);
    id
}

fn live(ws: &Ws, target: &str) -> String {
    std::fs::read_to_string(ws.path().join(format!("live/{target}.js"))).unwrap_or_default()
}

fn env_file(ws: &Ws, target: &str, action: &str) -> String {
    std::fs::read_to_string(ws.path().join(format!("live/{target}.{action}.env")))
        .unwrap_or_default()
}

fn active(ws: &Ws) -> Option<String> {
    let envs = ws.json(&["envs"]);
    envs.as_array()?
        .iter()
        .find(|e| e["name"] == "production")?["active_release"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn promote_ships_pinned_code_with_the_documented_environment() {
    let ws = Ws::new();
    with_targets(&ws, &["app"], "");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);",
    );
    let (code, v) = deploy(&ws, &[("app", "console.log('v1')")]);
    assert_eq!(code, Some(0), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let check = common::check(&v, "code.preview");
    assert_eq!(check["status"], "pass", "{check}");
    // The preview step ran against the preview's database, not production's.
    let preview_env = env_file(&ws, "app", "preview");
    assert!(
        preview_env.contains(&format!("D1OPS_ENV=preview-{}", id.to_lowercase())),
        "{preview_env}"
    );
    assert!(preview_env.contains(".d1ops/db/preview-"), "{preview_env}");
    // Later edits to the source change nothing: the pinned copy ships.
    artifact(&ws, "app", "console.log('edited after deploy')");
    ws.ok_as("bob", &["approve", &id]);
    let out = ws.ok_as("bob", &["promote", &id, "--yes"]);
    assert!(out.contains("code app deploy"), "{out}");
    assert_eq!(live(&ws, "app"), "console.log('v1')");
    let env = env_file(&ws, "app", "deploy");
    for expected in [
        format!("D1OPS_RELEASE_ID={id}"),
        "D1OPS_ENV=production".to_string(),
        "D1OPS_TARGET=app".to_string(),
        format!(
            "D1OPS_DATABASE={}",
            ws.production_path().canonicalize().unwrap().display()
        ),
        "D1OPS_DATABASE_NAME=production".to_string(),
        "D1OPS_BINDING=DB".to_string(),
        "D1OPS_ARTIFACT_PATH=".to_string(),
        "D1OPS_ARTIFACT_SHA256=".to_string(),
    ] {
        assert!(env.contains(&expected), "{expected} missing from:\n{env}");
    }
    assert!(env.contains(".d1ops/artifacts/"), "{env}");
    // Seeing it: release show, envs, audit.
    let shown = ws.json(&["release", "show", &id]);
    let t = &shown["targets"][0];
    assert_eq!(t["name"], "app");
    assert_eq!(t["kind"], "command");
    assert_eq!(t["preview"]["status"], "succeeded", "{t}");
    assert_eq!(t["production"]["status"], "succeeded", "{t}");
    assert!(t["artifact_sha256"].as_str().unwrap().len() == 64);
    let envs = ws.json(&["envs"]);
    let prod = envs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "production")
        .unwrap();
    assert_eq!(prod["code"][0]["target"], "app");
    assert_eq!(prod["code"][0]["release_id"], id.as_str());
    let audit = ws.ok(&["audit"]);
    assert!(audit.contains("code.deploy"), "{audit}");
    assert!(audit.contains("code.preview"), "{audit}");
    // The log is per release and target.
    let log = ws
        .path()
        .join(format!(".d1ops/code/{}/app.log", id.to_lowercase()));
    assert!(std::fs::read_to_string(log).unwrap().contains("exited 0"));
}

#[test]
fn a_failing_preview_step_blocks_the_release() {
    let ws = Ws::new();
    with_targets(&ws, &["app"], "");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let (code, v) = deploy(&ws, &[("app", "FAIL")]);
    assert_eq!(code, Some(3), "{v}");
    let check = common::check(&v, "code.preview");
    assert_eq!(check["status"], "fail");
    let reason = check["reason"].as_str().unwrap();
    assert!(reason.contains("app exploded during preview"), "{reason}");
    assert!(reason.contains("exited 7"), "{reason}");
    assert_eq!(v["verdict"], "blocked");
}

#[test]
fn a_code_only_release_gets_a_preview_for_its_code() {
    let ws = Ws::new();
    with_targets(&ws, &["app"], "");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    ship(&ws, &[("app", "v1")]);
    let (code, v) = deploy(&ws, &[("app", "v2")]);
    assert_eq!(code, Some(0), "{v}");
    assert!(
        v["preview"].as_str().unwrap().starts_with("preview-"),
        "{v}"
    );
    assert_eq!(common::check(&v, "code.preview")["status"], "pass");
    let id = v["id"].as_str().unwrap();
    ws.ok_as("bob", &["approve", id]);
    ws.ok_as("bob", &["promote", id, "--yes"]);
    assert_eq!(live(&ws, "app"), "v2");
}

/// R1 ships app+bot; R2 adds a migration and a bot that fails: app goes back to R1's code,
/// R1 stays active, R2 fails at stage `code`, exit 5, the schema as the policy says.
fn failing_second_target(policy: &str) -> (Ws, String, String) {
    let ws = Ws::new();
    if policy != "keep-schema" {
        let path = ws.path().join("d1ops.toml");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "on_code_failure = \"keep-schema\"",
            &format!("on_code_failure = \"{policy}\""),
        );
        std::fs::write(&path, text).unwrap();
    }
    with_targets(&ws, &["app", "bot"], "");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let r1 = ship(&ws, &[("app", "app v1"), ("bot", "bot v1")]);
    ws.production()
        .execute("INSERT INTO users(id) VALUES (1)", [])
        .unwrap();
    ws.migration(
        "0002_posts.sql",
        "CREATE TABLE posts(id INTEGER PRIMARY KEY);",
    );
    // The preview passes (the bot's preview step is fine with this artifact)…
    let (code, v) = deploy(&ws, &[("app", "app v2"), ("bot", "bot v2")]);
    assert_eq!(code, Some(0), "{v}");
    let r2 = v["id"].as_str().unwrap().to_string();
    // …then its production deploy fails: the pinned copy is swapped for one that fails
    // (standing in for a deploy that breaks in production only).
    let shown = ws.json(&["release", "show", &r2]);
    let bot = shown["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "bot")
        .unwrap()
        .clone();
    std::fs::write(ws.path().join(bot["pinned"].as_str().unwrap()), "FAIL").unwrap();
    ws.ok_as("bob", &["approve", &r2]);
    let (code, out, err) = ws.run_as("bob", &["promote", &r2, "--yes"]);
    assert_eq!(code, Some(5), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("failed while shipping its code"), "{err}");
    assert!(err.contains("target bot"), "{err}");
    assert!(
        err.contains("bot exploded during deploy"),
        "the output tail is shown: {err}"
    );
    assert!(
        err.contains(&format!("app went back to release {r1}'s code")),
        "{err}"
    );
    (ws, r1, r2)
}

#[test]
fn a_failing_target_puts_earlier_targets_back_and_keeps_the_schema() {
    let (ws, r1, r2) = failing_second_target("keep-schema");
    assert_eq!(active(&ws).as_deref(), Some(r1.as_str()));
    assert_eq!(live(&ws, "app"), "app v1", "app was switched back");
    assert_eq!(live(&ws, "bot"), "bot v1", "bot never switched");
    assert_eq!(ws.release_state(&r2), "failed");
    let shown = ws.json(&["release", "show", &r2]);
    let failure = &shown["failure"];
    assert_eq!(failure["stage"], "code");
    assert_eq!(failure["target"], "bot");
    assert!(
        failure["output_tail"]
            .as_str()
            .unwrap()
            .contains("exploded")
    );
    assert!(
        failure["outcome"]
            .as_str()
            .unwrap()
            .contains("keeps release"),
        "{failure}"
    );
    // keep-schema: the migration stays applied and is recorded as applied.
    assert!(
        ws.production_ledger()
            .contains(&"0002_posts.sql".to_string())
    );
    let envs = ws.json(&["envs"]);
    let code = &envs[0]["code"];
    for c in code.as_array().unwrap() {
        assert_eq!(c["release_id"], r1.as_str(), "{code}");
    }
    // The ledger agrees with d1ops' record: the next deploy works.
    ws.migration(
        "0003_tags.sql",
        "CREATE TABLE tags(id INTEGER PRIMARY KEY);",
    );
    let (code, v) = deploy(&ws, &[("app", "app v3"), ("bot", "bot v3")]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["pending"], serde_json::json!(["0003_tags.sql"]));
}

#[test]
fn restore_schema_puts_the_recovery_point_back_when_code_fails() {
    let (ws, r1, _r2) = failing_second_target("restore-schema");
    assert_eq!(active(&ws).as_deref(), Some(r1.as_str()));
    assert!(
        !ws.production_ledger()
            .contains(&"0002_posts.sql".to_string())
    );
    let rows: i64 = ws
        .production()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows, 1,
        "the row written before the promotion is still there"
    );
    let audit = ws.json(&["audit"]);
    let failed = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "promotion.failed")
        .unwrap_or_else(|| panic!("{audit}"));
    let detail: serde_json::Value =
        serde_json::from_str(failed["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["schema"], "restored", "{failed}");
    assert!(detail["loss"]["tables"].is_array(), "{failed}");
}

#[test]
fn rollback_deploys_the_earlier_releases_pinned_code() {
    let ws = Ws::new();
    with_targets(&ws, &["app"], "");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let r1 = ship(&ws, &[("app", "app v1")]);
    ws.migration(
        "0002_posts.sql",
        "CREATE TABLE posts(id INTEGER PRIMARY KEY);",
    );
    let r2 = ship(&ws, &[("app", "app v2")]);
    assert_eq!(live(&ws, "app"), "app v2");
    let out = ws.ok_as("bob", &["rollback", "--yes"]);
    assert!(out.contains("code app rollback"), "{out}");
    assert_eq!(live(&ws, "app"), "app v1");
    assert!(env_file(&ws, "app", "rollback").contains(&format!("D1OPS_RELEASE_ID={r1}")));
    assert_eq!(active(&ws).as_deref(), Some(r1.as_str()));
    assert_eq!(ws.release_state(&r2), "rolled_back");
    let envs = ws.json(&["envs"]);
    assert_eq!(envs[0]["code"][0]["release_id"], r1.as_str());
}

#[test]
fn a_failing_rollback_step_keeps_the_live_release_and_its_code() {
    let ws = Ws::new();
    with_targets(&ws, &["app"], "");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let r1 = ship(&ws, &[("app", "app v1")]);
    let r2 = ship(&ws, &[("app", "app v2")]);
    // R1's pinned copy now fails (as a rollback that breaks would).
    let shown = ws.json(&["release", "show", &r1]);
    let pinned = shown["artifacts"][0]["pinned"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(ws.path().join(&pinned), "FAIL").unwrap();
    let (code, _out, err) = ws.run_as("bob", &["rollback", "--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("rollback of"), "{err}");
    assert_eq!(active(&ws).as_deref(), Some(r2.as_str()));
    assert_eq!(
        live(&ws, "app"),
        "app v2",
        "reverted to the live release's code"
    );
}

#[test]
fn a_step_past_its_timeout_is_killed_and_fails() {
    let ws = Ws::new();
    with_targets(&ws, &["app"], "");
    let path = ws.path().join("d1ops.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("timeout = \"20s\"", "timeout = \"1s\"");
    std::fs::write(&path, text).unwrap();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let (code, v) = deploy(&ws, &[("app", "SLOW")]);
    assert_eq!(code, Some(3), "{v}");
    let reason = common::check(&v, "code.preview")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("timed out after 1s"), "{reason}");
}

#[test]
fn secrets_are_redacted_from_logs_and_failure_records() {
    let ws = Ws::new();
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[[target]]\nname = \"app\"\ndeploy = \"echo token=$CLOUDFLARE_API_TOKEN key=$APP_KEY; exit 1\"\nsecret_env = [\"APP_KEY\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY);",
    );
    let (code, v) = deploy(&ws, &[("app", "x")]);
    assert_eq!(code, Some(0), "{v}");
    let id = v["id"].as_str().unwrap();
    ws.ok_as("bob", &["approve", id]);
    let out = ws
        .cmd("bob")
        .env("CLOUDFLARE_API_TOKEN", "tok-0123456789secret")
        .env("APP_KEY", "app-key-value-42")
        .args(["promote", id, "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token=[redacted] key=[redacted]"), "{err}");
    let mut seen = err.to_string();
    seen.push_str(&ws.ok(&["--json", "release", "show", id]));
    seen.push_str(
        &std::fs::read_to_string(
            ws.path()
                .join(format!(".d1ops/code/{}/app.log", id.to_lowercase())),
        )
        .unwrap(),
    );
    seen.push_str(&String::from_utf8_lossy(
        &std::fs::read(ws.path().join(".d1ops/state.sqlite")).unwrap(),
    ));
    assert!(!seen.contains("tok-0123456789secret"), "the token leaked");
    assert!(!seen.contains("app-key-value-42"), "the secret leaked");
}

#[test]
fn bad_target_configuration_is_one_clear_sentence() {
    let ws = Ws::new();
    let path = ws.path().join("d1ops.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[[target]]\nname = \"app\"\nkind = \"command\"\n");
    std::fs::write(&path, text).unwrap();
    let (code, _out, err) = ws.run_as("alice", &["releases"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("target \"app\" (kind = \"command\") needs deploy"),
        "{err}"
    );
    assert!(err.contains("d1ops.toml"), "{err}");
}

/// Killed inside the code steps, the next command settles the promotion: every target's
/// deploy succeeded → completed forward; otherwise the targets go back to the previous
/// release's code and the release fails at stage `code`.
#[test]
fn a_promotion_killed_during_code_steps_is_settled_by_the_next_command() {
    for (point, completes) in [
        ("code.before_deploy", false),
        ("code.after_deploy", false),
        ("promote.before_code", false),
        ("promote.after_code", true),
    ] {
        let ws = Ws::new();
        with_targets(&ws, &["app"], "");
        ws.migration(
            "0001_users.sql",
            "CREATE TABLE users(id INTEGER PRIMARY KEY);",
        );
        let r1 = ship(&ws, &[("app", "app v1")]);
        ws.migration(
            "0002_posts.sql",
            "CREATE TABLE posts(id INTEGER PRIMARY KEY);",
        );
        let (code, v) = deploy(&ws, &[("app", "app v2")]);
        assert_eq!(code, Some(0), "{v}");
        let r2 = v["id"].as_str().unwrap().to_string();
        ws.ok_as("bob", &["approve", &r2]);
        let killed = ws
            .cmd("bob")
            .env("D1OPS_FAULT", point)
            .args(["promote", &r2, "--yes"])
            .output()
            .unwrap();
        assert!(
            !killed.status.success(),
            "{point}: the fault point was not reached"
        );
        // Any command settles it.
        ws.ok(&["releases"]);
        if completes {
            assert_eq!(active(&ws).as_deref(), Some(r2.as_str()), "{point}");
            assert_eq!(ws.release_state(&r2), "live", "{point}");
            assert_eq!(live(&ws, "app"), "app v2", "{point}");
        } else {
            assert_eq!(active(&ws).as_deref(), Some(r1.as_str()), "{point}");
            assert_eq!(ws.release_state(&r2), "failed", "{point}");
            assert_eq!(live(&ws, "app"), "app v1", "{point}: code back to r1");
            let shown = ws.json(&["release", "show", &r2]);
            assert_eq!(shown["failure"]["stage"], "code", "{point}: {shown}");
            let envs = ws.json(&["envs"]);
            assert_eq!(envs[0]["code"][0]["release_id"], r1.as_str(), "{point}");
        }
        // The schema stayed (keep-schema) either way.
        assert!(
            ws.production_ledger()
                .contains(&"0002_posts.sql".to_string()),
            "{point}"
        );
        let verify = ws.ok(&["audit", "--verify"]);
        assert!(verify.contains("audit chain verifies"), "{point}: {verify}");
    }
}

/// The demo's app ships as a `command` target: its live bundle (what the demo's background
/// traffic runs) is the live release's, switches with `promote` and goes back with
/// `rollback`.
#[test]
fn the_demo_app_goes_live_with_promote_and_back_with_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    let out = assert_cmd::Command::cargo_bin("d1ops")
        .unwrap()
        .env("D1OPS_DEMO_SCALE", "0.01")
        .env("NO_COLOR", "1")
        .args(["--json", "demo", root.to_str().unwrap(), "--no-console"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ready = v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "ready")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let live_version = || -> u64 {
        let text = std::fs::read_to_string(root.join(".d1ops/demo-app/live.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["version"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(live_version(), 2, "the likes release's app is live");
    let run = |user: &str, args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("d1ops")
            .unwrap()
            .arg("--workspace")
            .arg(&root)
            .env("D1OPS_USER", user)
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run("bob", &["approve", &ready]);
    let promoted = run("bob", &["promote", &ready, "--yes"]);
    assert!(promoted.contains("code app deploy"), "{promoted}");
    assert_eq!(live_version(), 6);
    let live = std::fs::read_to_string(root.join(".d1ops/demo-app/live.json")).unwrap();
    assert!(live.contains("user_by_username"), "v6 resolves @mentions");
    run("bob", &["rollback", "--yes"]);
    assert_eq!(live_version(), 2);
    let live = std::fs::read_to_string(root.join(".d1ops/demo-app/live.json")).unwrap();
    assert!(!live.contains("user_by_username"), "v2 does not");
}
