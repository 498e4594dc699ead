#!/usr/bin/env bash
# Installs what the acceptance tests drive besides the Rust code:
# - the official `openai` Python client, pinned, in a virtualenv under
#   $HOME/.cache/neuroshard/venv-openai (tests/tests/openai_client.rs uses it);
# - headless Chromium and chromedriver from Debian (tests/tests/explorer_browser.rs),
#   when missing; this needs root (CI runs as root);
# - nftables and iproute2 from Debian (tests/tests/nat.rs builds NAT routers in network
#   namespaces with `ip netns` and `nft`), when missing;
# - @polkadot/api and @polkadot/keyring, pinned, from npm into
#   $HOME/.cache/neuroshard/node-polkadot (tests/tests/polkadot_js.rs runs
#   tests/js/polkadot_api.mjs with NODE_PATH pointing there).
# Idempotent: a second run installs nothing.
set -euo pipefail

OPENAI_VERSION=3.57.0
VENV="$HOME/.cache/neuroshard/venv-openai"

if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    echo "== installing openai==$OPENAI_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing chromium and chromium-driver (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
    echo "== installing nftables and iproute2 (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nftables iproute2 >/dev/null
fi
POLKADOT_API_VERSION=16.5.6
POLKADOT_KEYRING_VERSION=14.0.3
NODE_DIR="$HOME/.cache/neuroshard/node-polkadot"
installed() { node -p "require('$NODE_DIR/node_modules/$1/package.json').version" 2>/dev/null; }
if [[ "$(installed @polkadot/api)" != "$POLKADOT_API_VERSION" \
    || "$(installed @polkadot/keyring)" != "$POLKADOT_KEYRING_VERSION" ]]; then
    command -v npm >/dev/null || { echo "node and npm are required (tests/js)"; exit 1; }
    echo "== installing @polkadot/api@$POLKADOT_API_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    [[ -f "$NODE_DIR/package.json" ]] || echo '{"private": true}' >"$NODE_DIR/package.json"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error --save-exact \
        "@polkadot/api@$POLKADOT_API_VERSION" "@polkadot/keyring@$POLKADOT_KEYRING_VERSION"
fi
echo "== test tools: openai $("$VENV/bin/python" -c 'import openai; print(openai.__version__)'), $(chromium --version 2>/dev/null | head -1), @polkadot/api $(installed @polkadot/api)"
