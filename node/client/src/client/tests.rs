//! In-process tests of the client: authoring, the pool, transfers, rejections, epoch
//! rewards, historical state and restarting on the same database.

use super::*;
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{
    blake2_256, BalancesCall, Call, Event, LayerRange, PonwCall, Receipt, ReceiptBody, UNIT,
};

fn pair(uri: &str) -> Keypair {
    keypair_from_uri(uri).unwrap()
}

fn account(uri: &str) -> AccountId {
    pair(uri).public().into()
}

/// The dev chain spec with 1 s slots, 4-block epochs and 3-block check windows, and no
/// spot checks (a sampled receipt's tokens would be held for a verdict).
fn chain() -> ChainInfo {
    let text = neuroshard_chain_spec::builtin_json("dev").unwrap();
    let mut spec = neuroshard_chain_spec::parse(text, "dev").unwrap();
    spec.genesis.params.system.slot_duration_ms = 1_000;
    spec.genesis.params.system.epoch_length = 4;
    spec.genesis.params.ponw.spot_check_permill = 0;
    spec.genesis.params.ponw.spot_check_blocks = 3;
    ChainInfo {
        name: "Test".into(),
        id: "test".into(),
        genesis: spec.genesis,
    }
}

fn model() -> Hash {
    chain().genesis.params.ponw.model.hash
}

fn open(path: &std::path::Path) -> Result<Client, ClientError> {
    Client::open(
        Store::open(path).unwrap(),
        &chain(),
        ClientConfig::default(),
    )
}

/// Authors the next block (slot = head slot + 1) as Alice.
fn author(client: &Client) -> Header {
    let slot = client.best_header().slot() + 1;
    client
        .author_block(slot, &pair("//Alice"))
        .unwrap()
        .expect("Alice authors every slot")
}

fn transfer(client: &Client, from: &str, nonce: u64, amount: u128) -> SignedExtrinsic {
    let call = Call::Balances(BalancesCall::transfer_allow_death {
        dest: account("//Charlie"),
        value: amount,
    });
    SignedExtrinsic::sign(&pair(from), &client.genesis_hash(), nonce, call)
}

#[test]
fn authoring_transfers_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let client = open(&path).unwrap();
    assert_eq!(client.best_header().number, 0);
    // Only the expected author authors, and never twice in a slot.
    assert!(client.author_block(1, &pair("//Bob")).unwrap().is_none());
    let h1 = author(&client);
    assert_eq!(h1.number, 1);
    assert!(client
        .author_block(h1.slot(), &pair("//Alice"))
        .unwrap()
        .is_none());

    let before_alice = client.account(&account("//Alice")).unwrap();
    let before_charlie = client.account(&account("//Charlie")).unwrap();
    let xt = transfer(&client, "//Alice", 0, 1_500_000_000_000);
    let second = transfer(&client, "//Alice", 1, UNIT);
    let fees = client.with_best_state(|state, _| {
        client.runtime().fee_of(state, &xt).unwrap()
            + client.runtime().fee_of(state, &second).unwrap()
    });
    assert!(fees > 0);
    client.submit(xt.clone()).unwrap();
    // A second transfer with the next nonce waits in the pool behind the first.
    client.submit(second).unwrap();
    assert_eq!(client.next_nonce(&account("//Alice")).unwrap(), 2);
    assert_eq!(client.pending().len(), 2);
    assert!(matches!(
        client.submit(xt.clone()),
        Err(SubmitError::Pool(PoolError::AlreadyImported(_)))
    ));
    let h2 = author(&client);
    let block = client.block(&h2.hash()).unwrap().unwrap();
    assert_eq!(block.extrinsics.len(), 2);
    assert!(client.pending().is_empty());
    let after_charlie = client.account(&account("//Charlie")).unwrap();
    assert_eq!(after_charlie.free - before_charlie.free, 2_500_000_000_000);
    let after_alice = client.account(&account("//Alice")).unwrap();
    assert_eq!(
        before_alice.free - after_alice.free,
        2_500_000_000_000 + fees
    );
    assert_eq!(after_alice.nonce, 2);

    // Replays and forgeries are refused and change nothing.
    let root = client.best_header().state_root;
    assert!(matches!(
        client.submit(xt.clone()),
        Err(SubmitError::Invalid(TransactionError::StaleNonce { .. }))
    ));
    let mut forged = transfer(&client, "//Alice", 2, UNIT);
    forged.signer = account("//Bob");
    assert!(matches!(
        client.submit(forged),
        Err(SubmitError::Invalid(TransactionError::BadSignature))
    ));
    assert!(client.pending().is_empty());
    assert_eq!(client.best_state_root(), root);

    // Historical state is read from the version history.
    let at_1 = client.state_at(&h1.hash()).unwrap().unwrap();
    assert_eq!(at_1.root(), h1.state_root);
    assert_eq!(
        client
            .runtime()
            .account(&at_1, &account("//Charlie"))
            .unwrap(),
        before_charlie
    );
    let head = client.best_header();
    drop(client);

    // Restart: same head, same state root.
    let client = open(&path).unwrap();
    assert_eq!(client.best_header(), head);
    assert_eq!(client.best_state_root(), head.state_root);
    let view = client.state_view(&h1.hash()).unwrap().unwrap();
    let charlie_at_1 = client.runtime().account(&view, &account("//Charlie"));
    assert_eq!(
        charlie_at_1.unwrap(),
        before_charlie,
        "history survives a restart"
    );
    assert_eq!(author(&client).number, 3);
    drop(client);

    // A different chain refuses the database.
    let mut other = chain();
    other.genesis.balances.pop();
    let err = Client::open(Store::open(&path).unwrap(), &other, ClientConfig::default());
    assert!(matches!(err, Err(ClientError::WrongChain { .. })));
}

/// Four blocks, each with a transfer from Bob; returns the headers from the old head on.
fn bob_sends_four_blocks(client: &Client) -> Vec<Header> {
    let mut headers = vec![client.best_header()];
    for nonce in 0..4 {
        client
            .submit(transfer(client, "//Bob", nonce, UNIT))
            .unwrap();
        headers.push(author(client));
    }
    headers
}

/// The events of the block `header` heads.
fn events_of(client: &Client, header: &Header) -> Vec<Event> {
    client.events(&header.hash()).unwrap().unwrap()
}

#[test]
fn receipts_settle_after_their_window_and_pay_at_the_epoch_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let client = open(&dir.path().join("db.redb")).unwrap();
    // Bob, the inference client, locks escrow that pays the workers he counter-signs for.
    let deposit = Call::Ponw(PonwCall::DepositEscrow { amount: 100 * UNIT });
    client
        .submit(SignedExtrinsic::sign(
            &pair("//Bob"),
            &client.genesis_hash(),
            0,
            deposit,
        ))
        .unwrap();
    author(&client);
    // Alice, the dev chain's worker, ran layers 0-10 for 30 tokens.
    let body = ReceiptBody {
        worker: account("//Alice"),
        client: account("//Bob"),
        model: model(),
        layers: LayerRange::new(0, 10).unwrap(),
        session: [1; 16],
        epoch: 0,
        seq: 0,
        position_start: 0,
        position_end: 30,
        commitment: blake2_256(b"out"),
        input_commitment: blake2_256(b"in"),
        adapter: None,
    };
    let receipt = Receipt::sign(body, &pair("//Alice"), &pair("//Bob"));
    let call = Call::Ponw(PonwCall::SubmitReceipts {
        receipts: vec![receipt.clone()],
    });
    let xt = SignedExtrinsic::sign(&pair("//Charlie"), &client.genesis_hash(), 0, call);
    client.submit(xt).unwrap();
    let h2 = author(&client);
    assert_eq!(
        client.block(&h2.hash()).unwrap().unwrap().extrinsics.len(),
        1
    );
    // A replayed receipt is refused at submission.
    let call = Call::Ponw(PonwCall::SubmitReceipts {
        receipts: vec![receipt],
    });
    let replay = SignedExtrinsic::sign(&pair("//Charlie"), &client.genesis_hash(), 1, call);
    assert!(client.submit(replay).is_err());

    // The receipt's window closes at block 2 + 3 = 5 (epoch 1): its fee is paid then
    // and its tokens count in epoch 1, which block 8 closes and pays.
    author(&client);
    author(&client);
    let settled = author(&client);
    assert_eq!(settled.number, 5);
    let settlements: Vec<_> = events_of(&client, &settled)
        .into_iter()
        .filter(|e| matches!(e, Event::EarningsSettled { .. }))
        .collect();
    assert_eq!(
        settlements,
        vec![Event::EarningsSettled {
            worker: account("//Alice"),
            receipts: 1,
            earned: UNIT, // 0.2 NSHD x 30 tokens x 10/30 layers, half burned
            tokens: 30,
        }]
    );
    author(&client);
    author(&client);
    let alice_before = client.account(&account("//Alice")).unwrap().free;
    let h8 = author(&client);
    assert_eq!(h8.number, 8);
    let paid: Vec<_> = events_of(&client, &h8)
        .into_iter()
        .filter_map(|e| match e {
            Event::RewardPaid {
                account,
                tokens,
                layer_tokens,
                reward,
                ..
            } => Some((account, tokens, layer_tokens, reward)),
            _ => None,
        })
        .collect();
    // 30 tokens through 10 of 30 layers: 30 x 0.1 x 10/30 = 1 NSHD.
    assert_eq!(paid, vec![(account("//Alice"), 30, 300, UNIT)]);
    let alice_after = client.account(&account("//Alice")).unwrap().free;
    assert_eq!(alice_after - alice_before, UNIT);
}

#[test]
fn refuses_to_start_when_the_state_does_not_match_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let client = open(&path).unwrap();
    let head = author(&client);
    let block = client.block(&head.hash()).unwrap().unwrap();
    drop(client);
    // Write a state change the head header does not commit to.
    let store = Store::open(&path).unwrap();
    let bogus: StateChanges = [(b"bogus".to_vec(), Some(b"value".to_vec()))]
        .into_iter()
        .collect();
    store.commit_block(&block, &bogus, None).unwrap();
    drop(store);
    let err = open(&path).err().expect("must refuse");
    assert!(
        matches!(err, ClientError::StateRootMismatch { number: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("corrupt"));
}

#[test]
fn revert_switches_to_a_fork_and_never_below_finality() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let client = Client::open(
        Store::open(&path).unwrap(),
        &chain(),
        ClientConfig {
            instant_finality: false,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let headers = bob_sends_four_blocks(&client);
    let old_branch: Vec<Block> = headers[3..]
        .iter()
        .map(|h| client.block(&h.hash()).unwrap().unwrap())
        .collect();
    // A branch is checked in full on the fork point's state, changing nothing.
    client
        .verify_branch(&headers[2].hash(), &old_branch)
        .unwrap();
    let mut tampered = old_branch.clone();
    tampered[1].extrinsics.clear();
    assert!(client.verify_branch(&headers[2].hash(), &tampered).is_err());
    assert!(client
        .verify_branch(&headers[1].hash(), &old_branch)
        .is_err());
    assert_eq!(client.best_header(), headers[4]);
    // Back to block 2: state, head and index are block 2's again.
    client.revert_to(&headers[2].hash()).unwrap();
    assert_eq!(client.best_header(), headers[2]);
    assert_eq!(client.best_state_root(), headers[2].state_root);
    assert_eq!(client.block_hash(3).unwrap(), None);
    assert!(client.block(&headers[4].hash()).unwrap().is_none());
    // A different block 3 (another slot) builds on it; a restart sees the new branch.
    let slot = headers[4].slot() + 5;
    let fork3 = client
        .author_block(slot, &pair("//Alice"))
        .unwrap()
        .unwrap();
    assert_eq!(fork3.parent_hash, headers[2].hash());
    assert_ne!(fork3.hash(), headers[3].hash());
    // Finality pins the chain: no reverting to or below the finalized block's parent.
    assert!(client.finalize(&fork3.hash(), b"votes").unwrap());
    assert!(matches!(
        client.revert_to(&headers[2].hash()),
        Err(ClientError::RevertFinalized { .. })
    ));
    assert_eq!(
        client.justification(&fork3.hash()).unwrap().as_deref(),
        Some(&b"votes"[..])
    );
    drop(client);
    let reopened = Client::open(
        Store::open(&path).unwrap(),
        &chain(),
        ClientConfig {
            instant_finality: false,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    assert_eq!(reopened.best_header(), fork3);
    assert_eq!(reopened.finalized_header(), fork3);
}

/// A peer's branch is blamed only for what is wrong with it: a branch that no longer
/// applies because our chain moved on (finalized past the fork point while the branch was
/// fetched, as when several peers sync us at once) is stale, not invalid; a tampered one
/// is invalid; a longer valid one replaces our fork.
#[test]
fn a_branch_our_chain_moved_past_is_stale_not_invalid() {
    use crate::sync::{adopt_branch, Adopted};
    let no_instant_finality = || ClientConfig {
        instant_finality: false,
        ..ClientConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Client::open(
        Store::open(&dir.path().join("a.redb")).unwrap(),
        &chain(),
        no_instant_finality(),
    )
    .unwrap();
    let mut headers = vec![a.best_header()];
    for nonce in 0..4 {
        a.submit(transfer(&a, "//Bob", nonce, UNIT)).unwrap();
        headers.push(author(&a));
    }
    let block = |h: &Header| a.block(&h.hash()).unwrap().unwrap();
    let branch: Vec<Block> = headers[3..].iter().map(block).collect();

    // B has blocks 1-2 and a fork block 3 of its own; A's longer branch replaces it.
    let b = Client::open(
        Store::open(&dir.path().join("b.redb")).unwrap(),
        &chain(),
        no_instant_finality(),
    )
    .unwrap();
    for h in &headers[1..3] {
        b.import_block(&block(h)).unwrap();
    }
    let fork3 = b
        .author_block(headers[4].slot() + 5, &pair("//Alice"))
        .unwrap()
        .unwrap();
    assert_eq!(fork3.number, 3);
    let mut tampered = branch.clone();
    tampered[1].extrinsics.clear();
    assert_eq!(
        adopt_branch(&b, &headers[2].hash(), &tampered),
        Adopted::Invalid
    );
    assert_eq!(b.best_header(), fork3, "an invalid branch changes nothing");
    assert_eq!(
        adopt_branch(&b, &headers[2].hash(), &branch),
        Adopted::Switched
    );
    assert_eq!(b.best_header(), headers[4]);

    // A has finalized its head meanwhile: the same branch offered again on block 2 cannot
    // be switched to, and that is nobody's fault.
    assert!(a.finalize(&headers[4].hash(), b"votes").unwrap());
    assert_eq!(
        adopt_branch(&a, &headers[2].hash(), &branch),
        Adopted::Stale
    );
    assert_eq!(a.best_header(), headers[4]);
}

/// `--state-pruning 1` keeps only the head's state, but never a state a reorg above
/// finality may revert to: with finality stuck at genesis nothing is discarded and a
/// revert works; once a block is final the states before it go, and a query at one is
/// `StateDiscarded` (events included, they are `System.Events`).
#[test]
fn state_pruning_keeps_every_state_above_finality() {
    let dir = tempfile::tempdir().unwrap();
    let config = ClientConfig {
        instant_finality: false,
        state_pruning: Some(1),
        ..ClientConfig::default()
    };
    let client = Client::open(
        Store::open(&dir.path().join("db")).unwrap(),
        &chain(),
        config,
    )
    .unwrap();
    let bob = account("//Bob");
    let headers = bob_sends_four_blocks(&client);
    let bob_at = |h: &Header| {
        let view = client.state_view(&h.hash()).unwrap().unwrap();
        client.runtime().account(&view, &bob).unwrap().free
    };
    assert!(bob_at(&headers[1]) > bob_at(&headers[4]));
    assert_eq!(
        client.state_at(&headers[1].hash()).unwrap().unwrap().root(),
        headers[1].state_root
    );
    client.revert_to(&headers[1].hash()).unwrap();
    assert_eq!(client.best_state_root(), headers[1].state_root);
    let mut fork = vec![headers[1].clone()];
    for _ in 0..3 {
        fork.push(author(&client));
    }
    assert!(client.finalize(&fork[2].hash(), b"votes").unwrap());
    // Finalized #3, head #4: kept from #3 on.
    for old in [&headers[0], &fork[0], &fork[1]] {
        assert!(matches!(
            client.state_view(&old.hash()),
            Err(ClientError::StateDiscarded(h)) if h == old.hash()
        ));
        assert!(matches!(
            client.events(&old.hash()),
            Err(ClientError::StateDiscarded(_))
        ));
    }
    assert_eq!(
        client.state_at(&fork[2].hash()).unwrap().unwrap().root(),
        fork[2].state_root
    );
    assert!(client.events(&fork[3].hash()).unwrap().is_some());
    // The reverted branch's blocks are unknown, not discarded.
    assert!(client.state_view(&headers[4].hash()).unwrap().is_none());
}
