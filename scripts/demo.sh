#!/usr/bin/env bash
# The main job on embedded defaults: installs what is missing, builds, starts a node (in-memory queue,
# ./recordings, API 127.0.0.1:7980, metrics 127.0.0.1:9464), records a 5 s test pattern + tone to
# recordings/demo-<time>.mp4 through a real handler process, checks the file with gst-discoverer-1.0, prints the
# node's outcome counters and stops the node with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked
bin=target/release/egress

log=$(mktemp -t egress-node.XXXXXX.log)
"$bin" serve >"$log" 2>&1 &
node=$!
trap 'kill -TERM $node 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9464/readyz >/dev/null 2>&1 && break
  kill -0 $node 2>/dev/null || { echo "node failed to start:"; cat "$log"; exit 1; }
  sleep 0.1
done

file="demo-$(date +%Y%m%d-%H%M%S).mp4"
echo "Recording 5 s of the test source to recordings/$file ..."
"$bin" start --source test --duration 5 --file "$file" --wait
gst-discoverer-1.0 "recordings/$file" | grep -E 'Duration|video|audio'
curl -fs http://127.0.0.1:9464/metrics | grep -E '^egress_handler_(started|results)_total\{type="test"' | grep -v ' 0$'
kill -TERM $node
wait $node
trap - EXIT
echo "Done: recordings/$file (node log: $log)"
