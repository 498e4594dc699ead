#!/usr/bin/env bash
# A 4-node NeuroShard network on loopback: the `local` chain's four validators
# (//Alice, //Bob, //Charlie, //Dave), three of them serving the model's shards
# (0-10, 10-20, 20-30) and the fourth a second provider of 10-20. Every node knows only
# the first one as bootnode; the rest is found through the DHT.
#
#   scripts/local-testnet.sh [BASE_DIR]      # default: ./target/local-testnet
#
# Node i (0..3) has JSON-RPC on 127.0.0.1:994(4+i), the HTTP API on 127.0.0.1:808(0+i)
# and p2p on 127.0.0.1:3033(3+i); logs go to BASE_DIR/node-i.log. Ctrl-C (or SIGTERM)
# stops all four cleanly. Set NEUROSHARD_BIN to use a prebuilt binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${1:-target/local-testnet}"
mkdir -p "$BASE"
if [[ -z "${NEUROSHARD_BIN:-}" ]]; then
  cargo build --release -p neuroshard-node
  NEUROSHARD_BIN="${CARGO_TARGET_DIR:-target}/release/neuroshard"
fi

KEYS=(//Alice //Bob //Charlie //Dave)
SHARDS=(0-10 10-20 20-30 10-20)
PIDS=()
STOPPING=""
stop() {
  [[ -n "$STOPPING" ]] && return
  STOPPING=1
  echo "stopping the local testnet"
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT INT TERM

BOOT=""
for i in 0 1 2 3; do
  args=(run --chain local --base-path "$BASE/node-$i" --key "${KEYS[$i]}" --validator
        --shards "${SHARDS[$i]}" --listen "/ip4/127.0.0.1/tcp/$((30333 + i))"
        --rpc-port $((9944 + i)) --api-port $((8080 + i)))
  if [[ -n "$BOOT" ]]; then args+=(--bootnodes "$BOOT"); fi
  RUST_LOG="${RUST_LOG:-info}" "$NEUROSHARD_BIN" "${args[@]}" >"$BASE/node-$i.log" 2>&1 &
  PIDS+=($!)
  if [[ -z "$BOOT" ]]; then
    for _ in $(seq 1 100); do
      BOOT=$(grep -o 'p2p listening address=[^ ]*' "$BASE/node-0.log" | head -1 | cut -d= -f2 || true)
      [[ -n "$BOOT" ]] && break
      sleep 0.1
    done
    [[ -n "$BOOT" ]] || { echo "node 0 did not start; see $BASE/node-0.log"; exit 1; }
    echo "bootnode: $BOOT"
  fi
done

echo "4 nodes running (logs in $BASE). Try:"
echo "  curl -s -H 'content-type: application/json' -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"neuroshard_shards\",\"params\":[]}' 127.0.0.1:9945"
echo "  curl -s 127.0.0.1:8081/v1/completions -H 'content-type: application/json' -d '{\"prompt\":\"The capital of France is\",\"max_tokens\":24}'"
echo "Ctrl-C stops them."
wait -n "${PIDS[@]}" || true
[[ -n "$STOPPING" ]] || echo "a node exited; see the logs in $BASE"
