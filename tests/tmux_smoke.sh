#!/usr/bin/env bash
# Smoke test of the real console in a real terminal: builds a workspace with the CLI, opens
# `d1ops console` in a detached 120x40 tmux session, sends keys, asserts on the captured
# screen, quits with q and checks the terminal was restored (alternate screen left).
# Usage: bash tests/tmux_smoke.sh   (D1OPS_BIN overrides the binary; default target/debug/d1ops)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${D1OPS_BIN:-$PWD/target/debug/d1ops}"
SOCK="d1ops-smoke-$$"
SCREEN=""

fail() {
  echo "tmux smoke test FAILED: $*" >&2
  if [ -n "$SCREEN" ]; then
    printf -- '--- last screen ---\n%s\n-------------------\n' "$SCREEN" >&2
  fi
  exit 1
}

command -v tmux >/dev/null 2>&1 || fail "tmux is not installed"
if [ ! -x "$BIN" ]; then
  cargo build --quiet || fail "cargo build failed"
fi
[ -x "$BIN" ] || fail "no binary at $BIN"

W="$(mktemp -d)"
cleanup() {
  tmux -L "$SOCK" kill-server >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

d1() { D1OPS_USER="${AS:-alice}" NO_COLOR=1 "$BIN" --workspace "$W" "$@"; }
release_id() { sed -n 's/^ *"id": *"\([0-9A-Z]\{26\}\)".*/\1/p' | head -n 1; }

# A workspace with one live release and one ready candidate.
d1 init >/dev/null || fail "init failed"
mkdir -p "$W/migrations"
printf 'CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n' >"$W/migrations/0001_users.sql"
R1="$(d1 deploy --label users --json | release_id)"
[ -n "$R1" ] || fail "deploy of 0001 printed no release id"
AS=bob d1 approve "$R1" >/dev/null || fail "approve $R1 failed"
d1 promote "$R1" --yes >/dev/null || fail "promote $R1 failed"
printf 'ALTER TABLE users ADD COLUMN bio TEXT;\n' >"$W/migrations/0002_bio.sql"
R2="$(d1 deploy --label bio --json | release_id)"
[ -n "$R2" ] || fail "deploy of 0002 printed no release id"

capture() { SCREEN="$(tmux -L "$SOCK" capture-pane -p -t smoke 2>/dev/null || true)"; }

# Waits up to ~10 s for a fixed string on screen.
wait_for() {
  local want="$1" what="$2"
  for _ in $(seq 1 100); do
    capture
    if grep -qF -- "$want" <<<"$SCREEN"; then
      return 0
    fi
    sleep 0.1
  done
  fail "$what: \"$want\" never appeared"
}

wait_gone() {
  local gone="$1" what="$2"
  for _ in $(seq 1 100); do
    capture
    if ! grep -qF -- "$gone" <<<"$SCREEN"; then
      return 0
    fi
    sleep 0.1
  done
  fail "$what: \"$gone\" is still on screen"
}

keys() { tmux -L "$SOCK" send-keys -t smoke "$@"; }

tmux -L "$SOCK" new-session -d -s smoke -x 120 -y 40 \
  "env D1OPS_USER=bob NO_COLOR=1 '$BIN' --workspace '$W' console; echo \"CONSOLE_EXIT=\$?\"; sleep 30" \
  || fail "could not start tmux"

wait_for "Releases (2)" "the console opens on the Releases tab"
wait_for "live $R1" "the header shows production's live release"
grep -qF "○ ready" <<<"$SCREEN" || fail "the candidate is not shown as ready"
grep -qF "● live" <<<"$SCREEN" || fail "the live release is not marked live"

keys 2 j k
keys Enter
wait_for "Release $R2" "Enter opens the release detail"
wait_for "0002_bio.sql [pending]" "the migrations sub-view lists the pending migration"
keys Tab
wait_for "+ column bio TEXT" "Tab shows the schema diff"

keys '?'
wait_for "Keys — Esc closes" "? opens help"
keys Escape
wait_gone "Keys — Esc closes" "Esc closes help"

keys Escape
wait_for "Releases (2)" "Esc goes back to the list"
keys 1
wait_for "Environments (3)" "1 shows environments"
grep -qF "production" <<<"$SCREEN" || fail "production is not listed"

keys p
wait_gone "Promote release" "p does nothing on Environments"
keys 2 p
wait_for "Promote release $R2" "p opens the promote confirmation"
wait_for "Would be refused" "the confirmation says the release lacks an approval"
keys Escape
wait_gone "Promote release" "Esc cancels the confirmation"

keys q
wait_for "CONSOLE_EXIT=0" "q quits with exit code 0"
alt="$(tmux -L "$SOCK" display-message -p -t smoke '#{alternate_on}')"
[ "$alt" = "0" ] || fail "the terminal is still on the alternate screen after quitting"
if grep -qF "Releases (" <<<"$SCREEN"; then
  fail "console output is still on screen after quitting"
fi
[ "$(d1 releases --json | grep -c '"state": "live"')" = "1" ] || fail "the smoke test changed the workspace"

echo "tmux smoke test ok"
