#!/usr/bin/env bash
# Runs the lifecycle benchmarks (benches/lifecycle.rs) and tees the report into a file.
#
#   bench/run.sh              full run: 500 MB database, 7 runs per side
#   bench/run.sh --quick      50 MB database, 3 runs (same as D1OPS_BENCH_QUICK=1)
#   OUT=path bench/run.sh     write the report to `path`
#
# Other knobs (env): D1OPS_BENCH_RUNS, D1OPS_BENCH_DB_MB, D1OPS_BENCH_ONLY=apply|clone,
# D1OPS_BENCH_DATA. The generated database is cached in target/bench-data/ (delete it to
# regenerate). Progress goes to stderr; the Markdown report (stdout) goes to the file.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench-data
out="${OUT:-target/bench-data/lifecycle-$(date -u +%Y%m%dT%H%M%SZ).md}"
{
  echo "<!-- $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo no-git)$(git diff --quiet 2>/dev/null || echo '+dirty') -->"
  cargo bench --bench lifecycle -- "$@"
} | tee "$out"
echo "report written to $out" >&2
