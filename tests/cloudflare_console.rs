//! The real console on the Cloudflare backend, in a real terminal (tmux): the header names
//! the backend and the account, and an operator approves and promotes a release from the
//! console, which lands on the D1 contract server's production database.
mod cf_support;
mod common;

use std::process::Command;
use std::time::Duration;

use common::Ws;

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(ws: &Ws, user: &str) -> Tmux {
        let socket = format!("d1ops-cf-{}", std::process::id());
        let mut env = String::new();
        for (k, v) in ws.env() {
            env.push_str(&format!("{k}='{v}' "));
        }
        let bin = assert_cmd::cargo::cargo_bin("d1ops");
        let shell = format!(
            "env {env}D1OPS_USER={user} NO_COLOR=1 '{}' --workspace '{}' console; echo CONSOLE_EXIT=$?; sleep 30",
            bin.display(),
            ws.path().display()
        );
        let ok = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "cf",
                "-x",
                "120",
                "-y",
                "40",
                &shell,
            ])
            .status()
            .expect("tmux is installed (bash .ci/run installs it)");
        assert!(ok.success(), "could not start tmux");
        Tmux { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "cf"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits up to 20 s for `want` on screen; returns the screen.
    fn wait_for(&self, want: &str) -> String {
        let mut screen = String::new();
        for _ in 0..200 {
            screen = self.screen();
            if screen.contains(want) {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("\"{want}\" never appeared; last screen:\n{screen}");
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-t", "cf", k])
                .status()
                .expect("send-keys");
            assert!(ok.success());
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn literal(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "cf", "-l", text])
            .status()
            .expect("send-keys");
        assert!(ok.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn approve_and_promote_from_the_console_on_cloudflare() {
    let (server, ws) = cf_support::cloudflare_ws();
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    let r1 = ws.ship();
    ws.migration("0002_bio.sql", "ALTER TABLE users ADD COLUMN bio TEXT;\n");
    let (code, d) = ws.deploy();
    assert_eq!(code, Some(0), "{d}");
    let r2 = d["id"].as_str().unwrap().to_string();

    let tmux = Tmux::start(&ws, "bob");
    let screen = tmux.wait_for(&format!("live {r1}"));
    let header = screen.lines().next().unwrap_or_default();
    assert!(header.contains("cloudflare"), "{header}");
    assert!(
        header.contains(&server.account_id()[..4]),
        "the account: {header}"
    );
    assert!(!screen.contains(server.token()));

    // Approve (Tab moves from Cancel to Approve), then promote with the typed code.
    tmux.keys(&["2", "/"]);
    tmux.literal(&r2);
    tmux.keys(&["Enter", "a"]);
    tmux.wait_for("Approve release");
    tmux.keys(&["Tab", "Enter"]);
    tmux.wait_for("approved");
    tmux.keys(&["p"]);
    tmux.wait_for(&format!("Promote release {r2}"));
    tmux.literal(&r2[22..]);
    tmux.keys(&["Tab", "Enter"]);
    tmux.wait_for(&format!("live {r2}"));
    tmux.keys(&["q"]);
    tmux.wait_for("CONSOLE_EXIT=0");

    assert_eq!(ws.release_state(&r2), "live");
    let ledger: i64 = ws
        .production()
        .query_row("SELECT count(*) FROM d1_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ledger, 2, "0002 reached the D1 production database");
}
