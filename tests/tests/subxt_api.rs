//! Issue 25, the Rust side of "existing tools work unmodified": `subxt` (0.51, its
//! dynamic API and `PolkadotConfig`, no generated code) talks to a real node of the dev
//! chain (500 ms slots, epochs long enough that no payout lands during the test). It
//! fetches the metadata from the node (`Metadata_metadata_at_version`), reads //Alice's
//! `System.Account`, signs with `subxt_signer`'s sr25519 dev Alice a
//! `Balances.transfer_keep_alive` to //Bob with a tip, asks the fee
//! (`TransactionPaymentApi_query_info`), watches it to a block and to finality, decodes
//! `Balances.Transfer` and `Balances.FeeBurned` from its events, and reads the balances
//! at the blocks before and of the transfer and at genesis. Every figure subxt decoded
//! is compared with the node's own RPC (`state_getStorage` decoded by the runtime's
//! types), so a mistake on both sides cannot hide.
//!
//! Written against subxt 0.51.1's API as its source declares it, not yet compiled nor
//! run: built only with the `tests` crate's feature `subxt` (docs/RPC.md), until it has
//! passed against a node and its build cost is measured.

use neuroshard_primitives::UNIT;
use neuroshard_tests::chain::{self, address};
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::NodeProcess;
use serde_json::json;
use std::time::Duration;
use subxt::client::OnlineClientAtBlockImpl;
use subxt::config::DefaultExtrinsicParamsBuilder;
use subxt::dynamic;
use subxt::ext::scale_decode::DecodeAsType;
use subxt::extrinsics::ExtrinsicEvents;
use subxt::transactions::{TransactionInBlock, TransactionProgress, TransactionStatus};
use subxt::utils::AccountId32;
use subxt::{OnlineClient, OnlineClientAtBlock, PolkadotConfig};
use subxt_signer::sr25519::dev;

/// The whole client session, from connecting to the last historical read.
const TIMEOUT: Duration = Duration::from_secs(120);

/// `System.Account`'s value as subxt decodes it through the metadata (only the
/// fields checked; the rest are skipped by name).
#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
struct AccountInfo {
    nonce: u64,
    data: AccountData,
}

#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
struct AccountData {
    free: u128,
    reserved: u128,
    frozen: u128,
}

#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
struct Transfer {
    from: AccountId32,
    to: AccountId32,
    amount: u128,
}

#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
struct FeeBurned {
    who: AccountId32,
    amount: u128,
}

/// What the subxt session saw, checked afterwards against the node's own RPC.
#[derive(Debug)]
struct Session {
    /// Alice before the transfer, read at the finalized head subxt started from.
    alice_start: AccountInfo,
    /// The fee subxt was quoted (without the tip) and the tip it signed.
    quoted: u128,
    tip: u128,
    /// Whether the watch reported the block before its finality.
    saw_in_block: bool,
    /// The block holding the transfer, its number and its parent's state.
    block_hash: String,
    block_number: u64,
    alice_parent: AccountInfo,
    alice_block: AccountInfo,
    bob_parent: AccountInfo,
    bob_block: AccountInfo,
    /// The transfer's events as subxt decoded them, in order.
    transfers: Vec<Transfer>,
    fees: Vec<FeeBurned>,
    succeeded: bool,
    /// Alice at genesis, read afterwards through `at_block(0)`.
    alice_genesis: AccountInfo,
}

#[test]
fn subxt_dynamic_api_transfers_and_reads_events() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 500, 1000).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let amount = 3 * UNIT / 2;
    let tip = UNIT / 1000;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let session = runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, session(node.ws_url(), amount, tip))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")))
    });
    let session = session.unwrap_or_else(|e| panic!("{e}\nnode log:\n{}", node.log_text()));
    let ctx = format!("{session:#?}");

    // The transfer's events, decoded by subxt from System.Events with the metadata.
    let (alice, bob) = (dev::alice().public_key().0, dev::bob().public_key().0);
    assert!(session.succeeded, "no System.ExtrinsicSuccess: {ctx}");
    assert_eq!(session.transfers.len(), 1, "{ctx}");
    let transfer = &session.transfers[0];
    assert_eq!(transfer.from.0, alice, "{ctx}");
    assert_eq!(transfer.to.0, bob, "{ctx}");
    assert_eq!(transfer.amount, amount, "{ctx}");
    // The fee charged is the quote plus the tip.
    assert!(session.quoted > 0, "{ctx}");
    assert_eq!(session.fees.len(), 1, "{ctx}");
    assert_eq!(session.fees[0].who.0, alice, "{ctx}");
    assert_eq!(
        session.fees[0].amount,
        session.quoted + session.tip,
        "{ctx}"
    );
    assert!(
        session.saw_in_block,
        "no InBestBlock before finality: {ctx}"
    );

    // Balances at the block and its parent: Alice paid the amount and the fee, Bob got
    // the amount, Alice's nonce moved by one.
    let paid = session.alice_parent.data.free - session.alice_block.data.free;
    assert_eq!(paid, amount + session.quoted + session.tip, "{ctx}");
    let got = session.bob_block.data.free - session.bob_parent.data.free;
    assert_eq!(got, amount, "{ctx}");
    assert_eq!(
        session.alice_block.nonce,
        session.alice_parent.nonce + 1,
        "{ctx}"
    );
    assert_eq!(
        session.alice_start.nonce, session.alice_parent.nonce,
        "{ctx}"
    );

    // Everything subxt read equals the node's own view of the same blocks.
    let hash_of = |n: u64| rpc.call("chain_getBlockHash", json!([n])).unwrap();
    assert_eq!(
        hash_of(session.block_number),
        json!(session.block_hash),
        "{ctx}"
    );
    let reads = [
        ("//Alice", session.block_number - 1, &session.alice_parent),
        ("//Alice", session.block_number, &session.alice_block),
        ("//Bob", session.block_number - 1, &session.bob_parent),
        ("//Bob", session.block_number, &session.bob_block),
        ("//Alice", 0, &session.alice_genesis),
    ];
    for (uri, number, theirs) in reads {
        let ours = chain::account_at(&rpc, uri, &hash_of(number)).unwrap();
        let what = format!("{uri} ({}) at #{number}: {ctx}", address(uri));
        assert_eq!(theirs.data.free, ours.free + ours.bonded, "{what}");
        assert_eq!(theirs.data.frozen, ours.bonded, "{what}");
        assert_eq!(theirs.data.reserved, ours.reserved, "{what}");
        assert_eq!(theirs.nonce, ours.nonce, "{what}");
    }
    // Genesis is older than every change: nonce 0, a different balance.
    assert_eq!(session.alice_genesis.nonce, 0, "{ctx}");
    assert_ne!(
        session.alice_genesis.data.free, session.alice_block.data.free,
        "{ctx}"
    );
}

/// Runs the wallet's side with subxt alone; errors are returned as text with the
/// step that failed.
async fn session(url: String, amount: u128, tip: u128) -> Result<Session, String> {
    let api = OnlineClient::<PolkadotConfig>::from_insecure_url(&url)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))?;
    let start = api
        .at_current_block()
        .await
        .map_err(|e| format!("at head: {e}"))?;
    for pallet in ["System", "Balances", "Ponw"] {
        if start.metadata().pallet_by_name(pallet).is_none() {
            return Err(format!("{pallet} missing from the node's metadata"));
        }
    }
    let (alice, bob) = (dev::alice(), dev::bob());
    let alice_start = account(&start, alice.public_key().0).await?;

    let call = dynamic::transaction(
        "Balances",
        "transfer_keep_alive",
        (bob.public_key().to_address::<()>(), amount),
    );
    let params = DefaultExtrinsicParamsBuilder::<PolkadotConfig>::new()
        .tip(tip)
        .build();
    let signed = start
        .transactions()
        .create_signed(&call, &alice, params)
        .await
        .map_err(|e| format!("signing: {e}"))?;
    let quoted = signed
        .partial_fee_estimate()
        .await
        .map_err(|e| format!("fee quote: {e}"))?;
    let progress = signed
        .submit_and_watch()
        .await
        .map_err(|e| format!("submitting: {e}"))?;
    let (finalized, saw_in_block) = watch_to_finality(progress).await?;
    let events = finalized
        .wait_for_success()
        .await
        .map_err(|e| format!("its events: {e}"))?;
    let (transfers, fees, succeeded) = decode_events(&events)?;

    // The balances at the block and its parent, then at genesis: historical reads.
    let block_hash = finalized.block_hash();
    let at_block = api
        .at_block(block_hash)
        .await
        .map_err(|e| format!("at the transfer's block: {e}"))?;
    let block_number = at_block.block_number();
    let at_parent = api
        .at_block(block_number - 1)
        .await
        .map_err(|e| format!("at its parent: {e}"))?;
    let genesis = api
        .at_block(0u64)
        .await
        .map_err(|e| format!("at genesis: {e}"))?;
    Ok(Session {
        alice_start,
        quoted,
        tip,
        saw_in_block,
        block_hash: format!("{block_hash:?}"),
        block_number,
        alice_parent: account(&at_parent, alice.public_key().0).await?,
        alice_block: account(&at_block, alice.public_key().0).await?,
        bob_parent: account(&at_parent, bob.public_key().0).await?,
        bob_block: account(&at_block, bob.public_key().0).await?,
        transfers,
        fees,
        succeeded,
        alice_genesis: account(&genesis, alice.public_key().0).await?,
    })
}

type Watched = TransactionInBlock<PolkadotConfig, OnlineClientAtBlockImpl<PolkadotConfig>>;

/// Follows the watch (`author_submitAndWatchExtrinsic`) to the block that finalized the
/// transaction; also says whether a best block held it first.
async fn watch_to_finality(
    mut progress: TransactionProgress<PolkadotConfig, OnlineClientAtBlockImpl<PolkadotConfig>>,
) -> Result<(Watched, bool), String> {
    let mut saw_in_block = false;
    loop {
        match progress.next().await {
            Some(Ok(TransactionStatus::InBestBlock(_))) => saw_in_block = true,
            Some(Ok(TransactionStatus::InFinalizedBlock(block))) => {
                return Ok((block, saw_in_block))
            }
            Some(Ok(
                TransactionStatus::Invalid { message }
                | TransactionStatus::Dropped { message }
                | TransactionStatus::Error { message },
            )) => return Err(format!("transaction refused: {message}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("watching: {e}")),
            None => return Err("the watch ended before finality".into()),
        }
    }
}

/// The transaction's `Balances.Transfer` and `Balances.FeeBurned` events, and whether
/// it ended with `System.ExtrinsicSuccess`.
fn decode_events(
    events: &ExtrinsicEvents<PolkadotConfig>,
) -> Result<(Vec<Transfer>, Vec<FeeBurned>, bool), String> {
    let (mut transfers, mut fees, mut succeeded) = (Vec::new(), Vec::new(), false);
    for event in events.iter() {
        let event = event.map_err(|e| format!("decoding an event: {e}"))?;
        match (event.pallet_name(), event.event_name()) {
            ("Balances", "Transfer") => transfers.push(
                event
                    .decode_fields_unchecked_as::<Transfer>()
                    .map_err(|e| format!("Transfer: {e}"))?,
            ),
            ("Balances", "FeeBurned") => fees.push(
                event
                    .decode_fields_unchecked_as::<FeeBurned>()
                    .map_err(|e| format!("FeeBurned: {e}"))?,
            ),
            ("System", "ExtrinsicSuccess") => succeeded = true,
            _ => {}
        }
    }
    Ok((transfers, fees, succeeded))
}

/// `System.Account(who)` at `at`, decoded through the node's metadata.
async fn account(
    at: &OnlineClientAtBlock<PolkadotConfig>,
    who: [u8; 32],
) -> Result<AccountInfo, String> {
    let address = dynamic::storage::<([u8; 32],), AccountInfo>("System", "Account");
    let value = at
        .storage()
        .fetch(address, (who,))
        .await
        .map_err(|e| format!("System.Account: {e}"))?;
    value
        .decode()
        .map_err(|e| format!("decoding System.Account: {e}"))
}
