//! Artifact pinning (issue 14, item 1): `deploy --artifact NAME=PATH` streams a copy of the
//! file into `.d1ops/artifacts/<sha256>` (content-addressed, shared by releases) and records
//! it on the release, so later edits to the source change nothing; `cleanup` removes only
//! copies no remaining release records.
mod common;

use std::path::{Path, PathBuf};

use common::Ws;
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `deploy --json --artifact NAME=PATH …` (must succeed); returns the release id.
fn deploy_with(ws: &Ws, artifacts: &[(&str, &Path)]) -> String {
    let specs: Vec<String> = artifacts
        .iter()
        .map(|(n, p)| format!("{n}={}", p.display()))
        .collect();
    let mut args = vec!["--json", "deploy"];
    for s in &specs {
        args.push("--artifact");
        args.push(s);
    }
    let (code, out, err) = ws.run_as("alice", &args);
    assert_eq!(code, Some(0), "deploy failed:\n{out}\n{err}");
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}\n{err}"));
    v["id"].as_str().expect("id").to_string()
}

/// The artifact named `name` in `release show --json`.
fn shown_artifact(ws: &Ws, id: &str, name: &str) -> serde_json::Value {
    let shown = ws.json(&["release", "show", id]);
    shown["artifacts"]
        .as_array()
        .unwrap_or_else(|| panic!("no artifacts: {shown}"))
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no artifact {name}: {shown}"))
        .clone()
}

fn pinned_file(ws: &Ws, artifact: &serde_json::Value) -> PathBuf {
    let rel = artifact["pinned"]
        .as_str()
        .unwrap_or_else(|| panic!("not pinned: {artifact}"));
    ws.path().join(rel)
}

fn write_source(ws: &Ws, file: &str, body: &str) -> PathBuf {
    let dir = ws.path().join("dist");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, body).unwrap();
    path
}

/// Files in `.d1ops/artifacts` (temporary files included).
fn pin_folder(ws: &Ws) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(ws.path().join(".d1ops/artifacts"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn deploy_pins_a_copy_of_each_artifact() {
    let ws = Ws::new();
    let app = write_source(&ws, "app.js", "export const version = 1;\n");
    let bot = write_source(&ws, "bot.js", "export default { bot: true };\n");
    let id = deploy_with(&ws, &[("app", &app), ("bot", &bot)]);
    for (name, src) in [("app", &app), ("bot", &bot)] {
        let a = shown_artifact(&ws, &id, name);
        let body = std::fs::read(src).unwrap();
        let sha = sha256_hex(&body);
        assert_eq!(a["sha256"], sha.as_str(), "{a}");
        assert_eq!(
            a["pinned"],
            format!(".d1ops/artifacts/{sha}").as_str(),
            "{a}"
        );
        let pinned = pinned_file(&ws, &a);
        let copy = std::fs::read(&pinned).unwrap();
        assert_eq!(copy, body, "the pinned copy holds the file's bytes");
        assert_eq!(
            sha256_hex(&copy),
            pinned.file_name().unwrap().to_string_lossy(),
            "the copy is named by its sha256"
        );
        assert_eq!(a["size_bytes"], body.len() as u64, "{a}");
    }
    // Exactly the two copies: no temporary file is left behind.
    assert_eq!(pin_folder(&ws).len(), 2, "{:?}", pin_folder(&ws));
}

#[test]
fn editing_the_source_after_deploy_changes_nothing() {
    let ws = Ws::new();
    let original = "export const version = 1;\n";
    let app = write_source(&ws, "app.js", original);
    let id = deploy_with(&ws, &[("app", &app)]);
    let before = shown_artifact(&ws, &id, "app");
    let pinned = pinned_file(&ws, &before);

    std::fs::write(&app, "export const version = 2; // edited after deploy\n").unwrap();
    let after = shown_artifact(&ws, &id, "app");
    assert_eq!(
        after, before,
        "the release's record does not follow the file"
    );
    assert_eq!(after["sha256"], sha256_hex(original.as_bytes()).as_str());
    assert_eq!(std::fs::read_to_string(&pinned).unwrap(), original);
    // Even the source gone: the pinned copy stays.
    std::fs::remove_file(&app).unwrap();
    assert_eq!(std::fs::read_to_string(&pinned).unwrap(), original);
}

#[test]
fn two_releases_share_one_pinned_copy() {
    let ws = Ws::new();
    let app = write_source(&ws, "app.js", "export const shared = true;\n");
    let first = deploy_with(&ws, &[("app", &app)]);
    let second = deploy_with(&ws, &[("app", &app)]);
    assert_ne!(first, second);
    let a = shown_artifact(&ws, &first, "app");
    let b = shown_artifact(&ws, &second, "app");
    assert_eq!(a["pinned"], b["pinned"], "{a} {b}");
    assert_eq!(pin_folder(&ws).len(), 1, "{:?}", pin_folder(&ws));
    // Both releases remain, so cleanup keeps the copy (a dry run lists nothing to remove).
    let dry = ws.json(&["cleanup", "--dry-run"]);
    assert_eq!(
        dry["would_remove_artifacts"],
        serde_json::json!([]),
        "{dry}"
    );
    let done = ws.json(&["cleanup", "--yes"]);
    assert_eq!(done["artifacts_removed"], serde_json::json!([]), "{done}");
    assert!(pinned_file(&ws, &a).is_file());
}

#[test]
fn release_show_names_the_pinned_copy() {
    let ws = Ws::new();
    let app = write_source(&ws, "app.js", "export const shown = true;\n");
    let id = deploy_with(&ws, &[("app", &app)]);
    let a = shown_artifact(&ws, &id, "app");
    let pinned = a["pinned"].as_str().unwrap().to_string();
    assert!(pinned.starts_with(".d1ops/artifacts/"), "{a}");
    let human = ws.ok(&["release", "show", &id]);
    assert!(
        human.contains(&format!("pinned {pinned}")),
        "human output names the pinned copy:\n{human}"
    );
}

#[test]
fn cleanup_removes_only_copies_no_release_records() {
    let ws = Ws::new();
    let app = write_source(&ws, "app.js", "export const kept = true;\n");
    let id = deploy_with(&ws, &[("app", &app)]);
    let kept = pinned_file(&ws, &shown_artifact(&ws, &id, "app"));
    let dir = ws.path().join(".d1ops/artifacts");
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    // A copy no release records (as a deploy refused after pinning would leave), old enough.
    let orphan_sha = sha256_hex(b"orphan");
    let orphan = dir.join(&orphan_sha);
    std::fs::write(&orphan, "orphan").unwrap();
    // A fresh unrecorded copy (a deploy between pinning and recording) and a stranger: kept.
    let young = dir.join(sha256_hex(b"young"));
    std::fs::write(&young, "young").unwrap();
    let stranger = dir.join("notes.txt");
    std::fs::write(&stranger, "mine").unwrap();
    for f in [&orphan, &kept, &stranger] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    let listed = format!(".d1ops/artifacts/{orphan_sha}");
    let dry = ws.json(&["cleanup", "--dry-run"]);
    assert_eq!(
        dry["would_remove_artifacts"],
        serde_json::json!([listed]),
        "{dry}"
    );
    assert!(orphan.is_file(), "a dry run removes nothing");
    let done = ws.json(&["cleanup", "--yes"]);
    assert_eq!(
        done["artifacts_removed"],
        serde_json::json!([listed]),
        "{done}"
    );
    assert!(!orphan.exists());
    assert!(kept.is_file() && young.is_file() && stranger.is_file());
}

#[test]
fn no_room_for_the_pinned_copy_is_a_refusal() {
    let ws = Ws::new();
    let app = write_source(&ws, "app.js", "export const big = true;\n");
    let out = ws
        .cmd("alice")
        .env("D1OPS_FAKE_FREE_BYTES", "1000")
        .args(["deploy", "--artifact", &format!("app={}", app.display())])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    // An obstacle of the machine, as a preview copy without room is at deploy: exit 1.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not enough disk space: pinning artifact app needs"),
        "{err}"
    );
    assert!(pin_folder(&ws).is_empty(), "{:?}", pin_folder(&ws));
    let releases = ws.json(&["releases"]);
    assert_eq!(releases.as_array().map(Vec::len), Some(0), "{releases}");
}

/// A deploy killed while streaming an artifact leaves `.pin-*.tmp`; the next command removes
/// it once nothing has written it for the lease, and leaves one being written alone.
#[test]
fn half_written_pin_is_removed_by_the_next_command() {
    let ws = Ws::new();
    let dir = ws.path().join(".d1ops/artifacts");
    std::fs::create_dir_all(&dir).expect("pin folder");
    let stale = dir.join(".pin-4242-1.tmp");
    let fresh = dir.join(".pin-4243-2.tmp");
    std::fs::write(&stale, b"half a bundle").expect("stale pin");
    std::fs::write(&fresh, b"being written").expect("fresh pin");
    let touched = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&stale)
        .status()
        .expect("touch");
    assert!(touched.success());
    ws.ok(&["releases"]);
    assert!(!stale.exists(), "the stale half-written pin was removed");
    assert!(
        fresh.exists(),
        "a pin written moments ago is left to its writer"
    );
}
