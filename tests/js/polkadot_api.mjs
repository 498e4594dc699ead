// A wallet's first steps against a NeuroShard node with the unmodified @polkadot/api,
// no custom types: connect (ApiPromise.create fetches metadata and runtime version),
// read the chain's properties, the head, accounts and events (now and at older blocks)
// and the pallets' constants. Prints one JSON object; tests/tests/polkadot_js.rs starts the node
// and compares every figure with the node's own RPC.
//
// Usage: POLKADOT_NODE_DIR=<dir with node_modules> node polkadot_api.mjs WS_URL \
//            ADDRESS[,ADDRESS...] [BLOCK_HASH...]
// Every ADDRESS is read at the head and at each BLOCK_HASH (through api.at).
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.POLKADOT_NODE_DIR ?? '.', 'package.json'));
const { ApiPromise, WsProvider } = require('@polkadot/api');

const [url, addressList, ...hashes] = process.argv.slice(2);
if (!url || !addressList) {
  console.error('usage: polkadot_api.mjs WS_URL ADDRESS[,ADDRESS...] [BLOCK_HASH...]');
  process.exit(2);
}

// A node that never answers fails the run instead of hanging it.
setTimeout(() => {
  console.error('timed out after 120 s');
  process.exit(3);
}, 120_000).unref();

const provider = new WsProvider(url, false);
await provider.connect();
const api = await ApiPromise.create({ provider, throwOnConnect: true });

const properties = (await api.rpc.system.properties()).toJSON();
const addresses = addressList.split(',');

// The accounts of `addresses` and the block number in the state after block `hash`.
async function stateAt(hash) {
  const at = await api.at(hash);
  const accounts = {};
  for (const address of addresses) {
    const info = await at.query.system.account(address);
    accounts[address] = {
      nonce: info.nonce.toString(),
      free: info.data.free.toString(),
      reserved: info.data.reserved.toString(),
      frozen: info.data.frozen.toString(),
    };
  }
  // The block's events, decoded from System.Events through the metadata.
  const events = (await at.query.system.events()).map(({ phase, event }) => ({
    phase: phase.toString(),
    section: event.section,
    method: event.method,
    // Field name -> value as text (SS58 addresses, decimal amounts).
    data: Object.fromEntries((event.data.names ?? []).map((name, i) => [name, event.data[i].toString()])),
  }));
  return { hash, number: (await at.query.system.number()).toString(), accounts, events };
}

// The head: polkadot.js hashes the header it fetched (Substrate's layout) itself.
const header = await api.rpc.chain.getHeader();
const headHash = header.hash.toHex();
const headHashByNumber = (await api.rpc.chain.getBlockHash(header.number.toNumber())).toHex();

const consts = {};
for (const [pallet, items] of Object.entries(api.consts)) {
  consts[pallet] = {};
  for (const [name, value] of Object.entries(items)) {
    consts[pallet][name] = value.toJSON();
  }
}

// Every account, listed through state_getKeysPaged and decoded from the map keys
// (Blake2_128Concat keeps the account after its hash).
const accountKeys = await api.query.system.account.keys();
const listedAccounts = accountKeys.map((key) => key.args[0].toString());

const history = [];
for (const hash of hashes) {
  history.push(await stateAt(hash));
}

console.log(JSON.stringify({
  runtime: api.runtimeVersion.toJSON(),
  // The metadata version polkadot.js chose (the highest Metadata_metadata_versions
  // lists that it supports; it falls back to V14 if V15 does not decode).
  metadataVersion: api.runtimeMetadata.version,
  genesisHash: api.genesisHash.toHex(),
  properties,
  headerNumber: header.number.toString(),
  headHashByNumber,
  head: await stateAt(headHash),
  pallets: api.runtimeMetadata.asLatest.pallets.map((p) => p.name.toString()),
  consts,
  listedAccounts,
  history,
}));
await api.disconnect();
