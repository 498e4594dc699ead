// A wallet sending NSHD with the unmodified @polkadot/api and @polkadot/keyring, no
// custom types: //Alice (sr25519) pays an ed25519 account, which pays part of it on to
// //Charlie with a tip. Both extrinsics are built, signed and submitted by polkadot.js
// itself (signed extrinsics v4 with the signed extensions the node's metadata lists).
// The first goes as wallets send by default: a MORTAL era born at a block polkadot.js
// picked and hashed itself from the header it fetched (Substrate's header layout), so it
// is only accepted if that hash is the node's block hash. A mortal transfer signed with
// a 4-block era and sent after it expired is refused, and the error is reported. Prints
// one JSON object; tests/tests/polkadot_js.rs checks the balances through the node's own
// RPC, and that the fee polkadot.js quoted (paymentInfo) is the fee charged.
//
// Usage: POLKADOT_NODE_DIR=<dir with node_modules> node polkadot_transfer.mjs WS_URL \
//            AMOUNT ONWARD TIP
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.POLKADOT_NODE_DIR ?? '.', 'package.json'));
const { ApiPromise, WsProvider } = require('@polkadot/api');
const { Keyring } = require('@polkadot/keyring');
const { cryptoWaitReady } = require('@polkadot/util-crypto');

const [url, amount, onward, tip] = process.argv.slice(2);
if (!url || !amount || !onward || !tip) {
  console.error('usage: polkadot_transfer.mjs WS_URL AMOUNT ONWARD TIP');
  process.exit(2);
}

setTimeout(() => {
  console.error('timed out after 120 s');
  process.exit(3);
}, 120_000).unref();

await cryptoWaitReady();
const provider = new WsProvider(url, false);
await provider.connect();
const api = await ApiPromise.create({ provider, throwOnConnect: true });

const alice = new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri('//Alice');
const edward = new Keyring({ type: 'ed25519', ss58Format: 42 }).addFromUri('//Edward');
const charlie = new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri('//Charlie');

// Waits until `address`'s free balance differs from `before` (the node authors a block
// every few hundred milliseconds).
async function changed(address, before) {
  for (;;) {
    const { data } = await api.query.system.account(address);
    if (data.free.toString() !== before) return data.free.toString();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const signedExtensions = api.registry.signedExtensions;
const edwardBefore = (await api.query.system.account(edward.address)).data.free.toString();
// Signed first and shown on stderr, so that a refusal can be read against the bytes.
async function send(tx, signer, options) {
  await tx.signAsync(signer, options);
  console.error(`${signer.type} signed: ${tx.toHex()}`);
  return tx.send();
}

// Sent as wallets' UIs send: with a status callback (author_submitAndWatchExtrinsic),
// until the block holding it is final.
function sendAndWatch(tx, signer, options) {
  return new Promise((resolve, reject) => {
    const statuses = [];
    tx.signAndSend(signer, options, ({ status }) => {
      statuses.push(status.type);
      if (status.isFinalized) {
        resolve({ hash: tx.hash.toHex(), statuses, block: status.asFinalized.toHex() });
      } else if (status.isDropped || status.isInvalid || status.isUsurped) {
        reject(new Error(`${tx.hash.toHex()}: ${statuses.join(' -> ')}`));
      }
    }).catch(reject);
  });
}

// The head as polkadot.js sees it: its own hash of the header, and the node's.
const head = await api.rpc.chain.getHeader();
const headHashes = {
  computed: head.hash.toHex(),
  node: (await api.rpc.chain.getBlockHash(head.number.toNumber())).toHex(),
  number: head.number.toNumber(),
};

// Default options: a mortal era (polkadot.js's default), birth block from the header.
const watched = await sendAndWatch(api.tx.balances.transferKeepAlive(edward.address, amount), alice, {});
const first = api.createType('Hash', watched.hash);
const edwardFunded = await changed(edward.address, edwardBefore);

const charlieBefore = (await api.query.system.account(charlie.address)).data.free.toString();
// What the wallet shows before sending: the fee through the runtime API
// (TransactionPaymentApi_query_info) and through the payment_queryInfo RPC.
const onwardTx = api.tx.balances.transferAllowDeath(charlie.address, onward);
const viaRuntimeApi = !!api.call.transactionPaymentApi;
const quoted = (await onwardTx.paymentInfo(edward, { era: 0, tip })).partialFee.toString();
const quotedRpc = (await api.rpc.payment.queryInfo(
  api.tx(onwardTx.toU8a()).signFake(edward.address, {
    blockHash: api.genesisHash,
    genesisHash: api.genesisHash,
    nonce: (await api.rpc.system.accountNextIndex(edward.address)),
    runtimeVersion: api.runtimeVersion,
    signedExtensions: api.registry.signedExtensions,
    tip,
  }).toHex(),
)).partialFee.toString();
const second = await send(onwardTx, edward, { era: 0, tip });
const charlieAfter = await changed(charlie.address, charlieBefore);
const edwardAfter = (await api.query.system.account(edward.address)).data.free.toString();

// A call that fails in its block, as a wallet sees it: Edward sends two transfers of
// more than half his balance at once. The second (nonce + 1) goes first, so it waits
// in the pool for the first instead of being dry-run and refused; once the first is in,
// it is included, pays its fee and fails. polkadot.js reports `dispatchError` from
// System.ExtrinsicFailed and names it from the metadata (registry.findMetaError).
const failAmount = BigInt(edwardAfter) / 2n + 1n;
const edwardNonce = (await api.rpc.system.accountNextIndex(edward.address)).toNumber();
const failing = api.tx.balances.transferAllowDeath(charlie.address, failAmount);
const failingQuote = (await failing.paymentInfo(edward, { era: 0 })).partialFee.toString();
let settle;
const failure = new Promise((resolve, reject) => { settle = { resolve, reject }; });
// Resolves once the node pooled it (the subscription is open): only then the first.
await failing.signAndSend(edward, { era: 0, nonce: edwardNonce + 1 }, (result) => {
  const { status, dispatchError, dispatchInfo } = result;
  if (status.isInBlock || status.isFinalized) {
    let module = null;
    if (dispatchError?.isModule) {
      const { section, name } = api.registry.findMetaError(dispatchError.asModule);
      module = { section, name };
    }
    settle.resolve({
      block: (status.isInBlock ? status.asInBlock : status.asFinalized).toHex(),
      isModule: !!dispatchError?.isModule,
      module,
      paysFee: dispatchInfo?.paysFee.toString() ?? null,
    });
  } else if (status.isDropped || status.isInvalid || status.isUsurped) {
    settle.reject(new Error(`the failing transfer: ${status.type}`));
  }
});
await send(api.tx.balances.transferAllowDeath(charlie.address, failAmount), edward, { era: 0, nonce: edwardNonce });
const failed = await failure;
// Both are in once the nonce moved past them.
while ((await api.rpc.system.accountNextIndex(edward.address)).toNumber() < edwardNonce + 2) {
  await new Promise((resolve) => setTimeout(resolve, 200));
}
const edwardAfterFailure = (await api.query.system.account(edward.address)).data.free.toString();

// Keep-alive and reaping: a transfer that would leave Edward with dust (half the
// existential deposit) is refused as transferKeepAlive and goes through as
// transferAllowDeath, which reaps him: the dust is burned (balances.DustLost).
const ed = api.consts.balances.existentialDeposit.toBigInt();
// The fee depends on the amount's compact length: quoted until the amount settles.
const quoteOf = async (value) => (await api.tx.balances.transferAllowDeath(charlie.address, value)
  .paymentInfo(edward, { era: 0 })).partialFee.toBigInt();
let reapAmount = BigInt(edwardAfterFailure) - ed;
for (let i = 0; i < 3; i += 1) {
  reapAmount = BigInt(edwardAfterFailure) - (await quoteOf(reapAmount)) - ed / 2n;
}
let keepAliveError = null;
try {
  await send(api.tx.balances.transferKeepAlive(charlie.address, reapAmount), edward, { era: 0 });
} catch (e) {
  keepAliveError = e.message;
}
const reapBlock = await new Promise((resolve, reject) => {
  api.tx.balances.transferAllowDeath(charlie.address, reapAmount)
    .signAndSend(edward, { era: 0 }, ({ status, dispatchError }) => {
      if (dispatchError) reject(new Error(`reaping transfer failed: ${dispatchError}`));
      if (status.isInBlock) resolve(status.asInBlock);
      if (status.isFinalized) resolve(status.asFinalized);
    }).catch(reject);
});
const reapEvents = (await (await api.at(reapBlock)).query.system.events())
  .filter(({ event }) => event.section === 'balances' && event.method === 'DustLost')
  .map(({ event }) => ({ account: event.data[0].toString(), amount: event.data[1].toString() }));
const reaped = (await (await api.at(reapBlock)).query.system.account(edward.address)).toJSON();

// The node's own notifications, unfolded: a last transfer watched through the raw RPC.
const raw = await api.tx.balances.transferAllowDeath(charlie.address, 1).signAsync(alice, { era: 0 });
const rawStatuses = await new Promise((resolve, reject) => {
  const seen = [];
  api.rpc.author.submitAndWatchExtrinsic(raw, (status) => {
    seen.push(status.type);
    if (status.isFinalized) resolve(seen);
    if (status.isDropped || status.isInvalid) reject(new Error(seen.join(' -> ')));
  }).catch(reject);
});

// A mortal transfer with a 4-block era, sent once the era is over.
const expiring = api.tx.balances.transferAllowDeath(charlie.address, 1);
await expiring.signAsync(alice, { era: 4 });
const signedAt = (await api.rpc.chain.getHeader()).number.toNumber();
while ((await api.rpc.chain.getHeader()).number.toNumber() < signedAt + 8) {
  await new Promise((resolve) => setTimeout(resolve, 200));
}
let expiredError = null;
try {
  await expiring.send();
} catch (e) {
  expiredError = e.message;
}
const expiredMortal = expiring.era.isMortalEra;

console.log(JSON.stringify({
  signedExtensions,
  headHashes,
  expiredError,
  expiredMortal,
  edward: edward.address,
  first: first.toHex(),
  firstStatuses: watched.statuses,
  firstFinalizedIn: watched.block,
  rawStatuses,
  second: second.toHex(),
  edwardBefore,
  edwardFunded,
  edwardAfter,
  failAmount: failAmount.toString(),
  failingQuote,
  failed,
  edwardAfterFailure,
  existentialDeposit: ed.toString(),
  reapAmount: reapAmount.toString(),
  keepAliveError,
  reapEvents,
  reaped,
  charlieBefore,
  charlieAfter,
  quoted,
  quotedRpc,
  viaRuntimeApi,
}));
await api.disconnect();
