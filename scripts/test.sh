#!/usr/bin/env bash
# The whole test suite: unit, property, real-model and multi-process tests.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --no-fail-fast "$@"
