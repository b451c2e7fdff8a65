#!/usr/bin/env bash
# Peak memory of `guardrail check` on the CLI path, for N generated workloads (default 10000 100000):
#   benches/cli-memory.sh [N...]
# Workloads come from benches/scan.rs's generator; the binary is target/release/guardrail (built here)
# unless GUARDRAIL_BIN names one.
# Prints the maximum resident set size that /usr/bin/time -v reports, with the wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(10000 100000)
# GUARDRAIL_BIN=path measures another build (e.g. target/debug/guardrail, or an older release).
bin=${GUARDRAIL_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --bin guardrail >/dev/null
  bin=target/release/guardrail
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in "${sizes[@]}"; do
  GUARDRAIL_BENCH_KEEP="$work" GUARDRAIL_BENCH_GENERATE_ONLY=1 cargo bench --bench scan -- "$n" >/dev/null
  /usr/bin/time -v "$bin" check --no-config --format json "$work/$n" >"$work/out.json" 2>"$work/time.txt" || true
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  findings=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['findings']))" "$work/out.json")
  echo "n=$n: peak RSS $((rss / 1024)) MiB, wall $wall, $findings finding(s)"
  rm -rf "${work:?}/$n"
done
