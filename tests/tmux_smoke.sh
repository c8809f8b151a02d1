#!/usr/bin/env bash
# Smoke test of the real console in a real terminal: builds a workspace with the CLI, opens
# `d1ops console` in a detached 80x24 tmux session (the on-call laptop split), sends keys,
# asserts on the captured screen, quits with q and checks the terminal was restored
# (alternate screen left). Then, on a demo workspace with 100k rows (D1OPS_DEMO_SCALE=0.1),
# `:restore ID` starts the loss comparison, Esc cancels it and q must exit in under 1 s.
# Usage: bash tests/tmux_smoke.sh   (D1OPS_BIN overrides the binary; default target/debug/d1ops;
# D1OPS_SMOKE_SKIP_DEMO=1 skips the demo part)
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

# Starts (or restarts) the 80x24 session running "$1"; a server still shutting down after
# kill-server can refuse the first try.
start_session() {
  tmux -L "$SOCK" kill-server >/dev/null 2>&1 || true
  for _ in $(seq 1 20); do
    if tmux -L "$SOCK" new-session -d -s smoke -x 80 -y 24 "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

tmux -L "$SOCK" new-session -d -s smoke -x 80 -y 24 \
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

# Read-only: a dangerous key says why it does nothing.
start_session "env D1OPS_USER=bob NO_COLOR=1 '$BIN' --workspace '$W' --readonly console; echo \"CONSOLE_EXIT=\$?\"; sleep 30" \
  || fail "could not start tmux (read-only)"
wait_for "READ-ONLY" "the read-only badge shows at 80 columns"
keys 2 j p
wait_for "read-only console: promote is disabled" "p says why it does nothing read-only"
keys q
wait_for "CONSOLE_EXIT=0" "q quits the read-only console"

if [ "${D1OPS_SMOKE_SKIP_DEMO:-}" != "1" ]; then
  # Quit never waits: S starts the loss comparison on 100k rows, Esc cancels it, q exits at once.
  D="$W/demo"
  D1OPS_DEMO_SCALE="${D1OPS_DEMO_SCALE:-0.1}" "$BIN" demo "$D" --no-console >/dev/null 2>&1 \
    || fail "the demo workspace could not be built"
  LIVE="$("$BIN" --workspace "$D" releases --json | tr -d ' \n' | grep -o '"id":"[0-9A-Z]\{26\}"[^}]*"state":"live"' | head -n 1 | sed 's/^"id":"\([0-9A-Z]*\)".*/\1/')"
  [ -n "$LIVE" ] || fail "the demo has no live release"
  start_session "env D1OPS_USER=bob NO_COLOR=1 '$BIN' --workspace '$D' console; echo \"CONSOLE_EXIT=\$?\"; sleep 30" \
    || fail "could not start tmux (demo)"
  wait_for "Releases (" "the demo console opens"
  keys :
  wait_for "Command" "the command palette opens"
  keys "restore $LIVE" Enter
  wait_for "Restore before release" "S (here :restore) opens the restore confirmation"
  if grep -qF "checking…" <<<"$SCREEN"; then
    echo "Esc while the loss comparison runs"
  else
    echo "note: the loss comparison had finished before Esc (a larger D1OPS_DEMO_SCALE makes it slower)"
  fi
  keys Escape
  wait_gone "Restore before release" "Esc cancels the restore confirmation"
  started="$(date +%s%N)"
  keys q
  for _ in $(seq 1 200); do
    capture
    grep -qF "CONSOLE_EXIT=" <<<"$SCREEN" && break
    sleep 0.02
  done
  took_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  grep -qF "CONSOLE_EXIT=0" <<<"$SCREEN" || fail "q did not quit after Esc cancelled the comparison"
  [ "$took_ms" -lt 1000 ] || fail "q took ${took_ms} ms to exit after a cancelled comparison (limit 1000 ms)"
  echo "quit after a cancelled comparison: ${took_ms} ms"
fi

echo "tmux smoke test ok"
