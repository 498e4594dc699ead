//! Runtime tests: transfers with fees, replay and forgery rejection, block import
//! checks, epoch rewards through real blocks, and a property test that any sequence of
//! blocks executes to the same state root on a second copy of the chain.

use super::*;
use neuroshard_balances::Params as BalancesParams;
use neuroshard_ponw::{fixtures as ponw_fixtures, Params as PonwParams};
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::model_chunks::ChunkTree;
use neuroshard_primitives::{
    blake2_256, AccountId, BalancesCall, Block, Call, Event, Header, Keypair, LayerRange, PonwCall,
    Receipt, ReceiptBody, SignedExtrinsic, StakingCall, UNIT,
};
use neuroshard_staking::Params as StakingParams;
use proptest::prelude::*;
use sp_core::Pair as _;

pub(crate) fn pair(uri: &str) -> Keypair {
    keypair_from_uri(uri).unwrap()
}

pub(crate) fn account(uri: &str) -> AccountId {
    pair(uri).public().into()
}

fn model() -> Hash {
    blake2_256(b"test model")
}

/// The stand-in model file whose chunk root the test chain commits to.
fn model_file() -> Vec<u8> {
    (0..30_000u32).map(|i| (i * 13 % 251) as u8).collect()
}

/// The stand-in file cut into the test model's 30 layers.
fn model_layers() -> Vec<Vec<u8>> {
    ponw_fixtures::layer_bytes(&model_file(), 30)
}

fn chunk_trees() -> Vec<ChunkTree> {
    ponw_fixtures::layer_trees(&model_layers(), 512)
}

pub(crate) fn test_config() -> GenesisConfig {
    GenesisConfig {
        params: RuntimeParams {
            system: SystemParams {
                slot_duration_ms: 2_000,
                epoch_length: 5,
                max_extrinsic_bytes: 4 << 20,
                max_block_bytes: 8 << 20,
            },
            balances: BalancesParams {
                existential_deposit: UNIT / 1000,
                base_fee: UNIT / 100,
                byte_fee: 1_000_000,
            },
            staking: StakingParams {
                unbonding_blocks: 3,
                min_validator_bond: 100 * UNIT,
            },
            // The fixture's rewards and fees are what the tests below compute with: 0.1
            // NSHD a token, 1 NSHD an uptime minute, clients pay 0.2 NSHD a token (half
            // burned), a 100 NSHD worker bond.
            ponw: PonwParams {
                max_receipts_per_batch: 10_000,
                max_shards_per_worker: 8,
                escrow_release_blocks: 10,
                ..ponw_fixtures::params(ponw_fixtures::model_with_chunks(model(), &chunk_trees()))
            },
            training: neuroshard_training_pallet::Params {
                training_reward: 2 * UNIT,
                ..neuroshard_training_pallet::fixtures::params()
            },
        },
        balances: ["//Alice", "//Bob", "//Charlie", "//Dave"]
            .iter()
            .map(|u| (account(u), 1_000_000 * UNIT))
            .collect(),
        validators: vec![(account("//Alice"), 1_000 * UNIT)],
        workers: vec![(account("//Bob"), vec![LayerRange::new(0, 30).unwrap()])],
    }
}

/// A single-authority chain in memory: state, head and the runtime.
pub(crate) struct Chain {
    pub(crate) runtime: Runtime,
    pub(crate) state: StateDb,
    pub(crate) head: Header,
}

impl Chain {
    pub(crate) fn new() -> Self {
        Self::from_config(&test_config())
    }

    pub(crate) fn from_config(config: &GenesisConfig) -> Self {
        let (state, head) = Runtime::build_genesis(config).unwrap();
        Self {
            runtime: Runtime::new(head.hash()),
            state,
            head,
        }
    }

    pub(crate) fn sign(&self, uri: &str, nonce: u64, call: Call) -> SignedExtrinsic {
        SignedExtrinsic::sign(&pair(uri), &self.runtime.genesis_hash(), nonce, call)
    }

    /// Builds, seals and applies the next block; returns it with its events.
    pub(crate) fn produce(
        &mut self,
        candidates: Vec<SignedExtrinsic>,
    ) -> (Block, Vec<Event>, usize) {
        let slot = self.head.slot() + 1;
        let randomness = Runtime::randomness(&self.state).unwrap();
        let vrf = neuroshard_primitives::slot_lottery::sign(&pair("//Alice"), &randomness, slot);
        let built = self
            .runtime
            .build_block(
                &self.state,
                &self.head,
                slot,
                account("//Alice"),
                vrf,
                candidates,
            )
            .unwrap();
        let mut block = built.block;
        block.header.seal_with(&pair("//Alice"));
        self.state.apply(&built.changes);
        self.head = block.header.clone();
        (block, built.events, built.rejected.len())
    }

    pub(crate) fn import(&mut self, block: &Block) -> Result<Vec<Event>, BlockError> {
        let executed = self.runtime.execute_block(&self.state, &self.head, block)?;
        self.state.apply(&executed.changes);
        self.head = block.header.clone();
        Ok(executed.events)
    }

    /// A heartbeat of `uri` answering the challenge recorded in the head state (one
    /// with no chunk when `uri` has no challenge: it is no worker).
    pub(crate) fn heartbeat(&self, uri: &str) -> Call {
        let Some(c) = neuroshard_ponw::challenge(&self.state, &account(uri)).unwrap() else {
            return Call::Ponw(PonwCall::Heartbeat {
                minute: 0,
                chunk: Vec::new(),
                proof: Vec::new(),
            });
        };
        let (chunk, proof) = ponw_fixtures::answer(&c, &model_layers(), &chunk_trees());
        Call::Ponw(PonwCall::Heartbeat {
            minute: c.minute,
            chunk,
            proof,
        })
    }

    /// //Alice's (the sole validator's) report that `uri` answered her liveness probe
    /// of the minute recorded in the head state.
    fn probe_passed(&self, uri: &str) -> Call {
        let c = neuroshard_ponw::challenge(&self.state, &account(uri))
            .unwrap()
            .expect("a block has opened the minute");
        Call::Ponw(PonwCall::ReportLiveness {
            minute: c.minute,
            answered: vec![(
                account(uri),
                neuroshard_ponw::ProbeParams::default().reference_throughput,
            )],
            failed: vec![],
        })
    }

    pub(crate) fn free(&self, uri: &str) -> u128 {
        self.runtime
            .account(&self.state, &account(uri))
            .unwrap()
            .free
    }
}

pub(crate) fn transfer(to: &str, amount: u128) -> Call {
    Call::Balances(BalancesCall::transfer_allow_death {
        dest: account(to),
        value: amount,
    })
}

#[test]
fn transfer_moves_amount_plus_fee_and_replay_is_refused() {
    let mut chain = Chain::new();
    let xt = chain.sign("//Alice", 0, transfer("//Bob", 1_500_000_000_000));
    let fee = chain.runtime.fee_of(&chain.state, &xt).unwrap();
    assert!(fee > 0);
    let (alice, bob) = (chain.free("//Alice"), chain.free("//Bob"));
    chain
        .runtime
        .validate_transaction(&chain.state, &chain.head.hash(), &xt, 1, Validation::DryRun)
        .unwrap();
    let (block, _, rejected) = chain.produce(vec![xt.clone()]);
    assert_eq!((block.extrinsics.len(), rejected), (1, 0));
    assert_eq!(chain.free("//Alice"), alice - 1_500_000_000_000 - fee);
    assert_eq!(chain.free("//Bob"), bob + 1_500_000_000_000);

    let root = chain.state.root();
    assert_eq!(
        chain.runtime.validate_transaction(
            &chain.state,
            &chain.head.hash(),
            &xt,
            2,
            Validation::DryRun
        ),
        Err(TransactionError::StaleNonce {
            expected: 1,
            got: 0
        })
    );
    let (block, _, rejected) = chain.produce(vec![xt]);
    assert_eq!((block.extrinsics.len(), rejected), (0, 1));
    assert_eq!(chain.free("//Bob"), bob + 1_500_000_000_000);
    assert_ne!(root, chain.state.root(), "block number changes the state");
}

#[test]
fn forged_and_foreign_extrinsics_are_refused() {
    let chain = Chain::new();
    let mut forged = chain.sign("//Alice", 0, transfer("//Bob", UNIT));
    forged.call = transfer("//Charlie", UNIT);
    assert_eq!(
        chain.runtime.validate_transaction(
            &chain.state,
            &chain.head.hash(),
            &forged,
            1,
            Validation::DryRun
        ),
        Err(TransactionError::BadSignature)
    );
    let foreign = SignedExtrinsic::sign(
        &pair("//Alice"),
        &blake2_256(b"other chain"),
        0,
        transfer("//Bob", UNIT),
    );
    assert_eq!(
        chain.runtime.validate_transaction(
            &chain.state,
            &chain.head.hash(),
            &foreign,
            1,
            Validation::DryRun
        ),
        Err(TransactionError::BadSignature)
    );
    let broke = chain.sign("//Eve", 0, transfer("//Bob", UNIT));
    assert!(matches!(
        chain.runtime.validate_transaction(
            &chain.state,
            &chain.head.hash(),
            &broke,
            1,
            Validation::DryRun
        ),
        Err(TransactionError::CannotPayFee(_))
    ));
    let too_much = chain.sign("//Alice", 0, transfer("//Bob", 10_000_000 * UNIT));
    assert!(matches!(
        chain.runtime.validate_transaction(
            &chain.state,
            &chain.head.hash(),
            &too_much,
            1,
            Validation::DryRun
        ),
        Err(TransactionError::Call(DispatchError::Balances(_)))
    ));
}

#[test]
fn import_rejects_tampered_blocks() {
    let mut author = Chain::new();
    let mut importer = Chain::new();
    let xt = author.sign("//Alice", 0, transfer("//Bob", UNIT));
    let (block, _, _) = author.produce(vec![xt]);

    let mut bad_root = block.clone();
    bad_root.header.state_root = blake2_256(b"lie");
    bad_root.header.seal_with(&pair("//Alice"));
    assert!(matches!(
        importer.import(&bad_root),
        Err(BlockError::StateRoot { .. })
    ));

    let mut bad_seal = block.clone();
    bad_seal.header.seal_with(&pair("//Bob"));
    assert_eq!(importer.import(&bad_seal), Err(BlockError::BadSeal));

    let mut wrong_author = block.clone();
    wrong_author.header.digest.pre.author = account("//Bob");
    wrong_author.header.seal_with(&pair("//Bob"));
    assert_eq!(importer.import(&wrong_author), Err(BlockError::WrongAuthor));

    // A VRF signature for another slot, or by another key, is refused even when the
    // header is resealed by the author.
    let mut other_slot = block.clone();
    other_slot.header.digest.pre.vrf = neuroshard_primitives::slot_lottery::sign(
        &pair("//Alice"),
        &Runtime::randomness(&importer.state).unwrap(),
        block.header.slot() + 1,
    );
    other_slot.header.seal_with(&pair("//Alice"));
    assert_eq!(importer.import(&other_slot), Err(BlockError::BadVrf));
    let mut other_key = block.clone();
    other_key.header.digest.pre.vrf = neuroshard_primitives::slot_lottery::sign(
        &pair("//Bob"),
        &Runtime::randomness(&importer.state).unwrap(),
        block.header.slot(),
    );
    other_key.header.seal_with(&pair("//Alice"));
    assert_eq!(importer.import(&other_key), Err(BlockError::BadVrf));

    let mut extra = block.clone();
    extra
        .extrinsics
        .push(importer.sign("//Bob", 0, transfer("//Alice", UNIT)));
    assert_eq!(importer.import(&extra), Err(BlockError::ExtrinsicsRoot));

    importer.import(&block).unwrap();
    assert_eq!(importer.state.root(), author.state.root());
}

#[test]
fn every_block_moves_the_randomness_and_the_lottery_follows_the_bonds() {
    let mut config = test_config();
    let bonds = [("//Alice", 1_000 * UNIT), ("//Charlie", 3_000 * UNIT)];
    config.validators = bonds.iter().map(|(u, b)| (account(u), *b)).collect();
    let (state, head) = Runtime::build_genesis(&config).unwrap();
    let mut chain = Chain {
        runtime: Runtime::new(head.hash()),
        state,
        head,
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut charlie_slots = 0;
    for _ in 0..40 {
        seen.insert(Runtime::randomness(&chain.state).unwrap());
        // Every slot up to the next 20 has a leader; count Charlie's share of them.
        let leaders: Vec<AccountId> = (1..=20)
            .map(|d| {
                Runtime::expected_author(&chain.state, chain.head.slot() + d)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        charlie_slots += leaders
            .iter()
            .filter(|a| **a == account("//Charlie"))
            .count();
        let slot = chain.head.slot() + 1;
        let leader = &leaders[0];
        let uri = bonds.iter().find(|(u, _)| account(u) == *leader).unwrap().0;
        let vrf = neuroshard_primitives::slot_lottery::sign(
            &pair(uri),
            &Runtime::randomness(&chain.state).unwrap(),
            slot,
        );
        let built = chain
            .runtime
            .build_block(&chain.state, &chain.head, slot, leader.clone(), vrf, vec![])
            .unwrap();
        let mut block = built.block;
        block.header.seal_with(&pair(uri));
        // The other validator may not author this slot.
        let other = bonds.iter().find(|(u, _)| account(u) != *leader).unwrap().0;
        let mut usurped = block.clone();
        usurped.header.digest.pre.author = account(other);
        usurped.header.seal_with(&pair(other));
        let mut importer = Chain {
            runtime: chain.runtime.clone(),
            state: chain.state.clone(),
            head: chain.head.clone(),
        };
        assert_eq!(importer.import(&usurped), Err(BlockError::WrongAuthor));
        chain.import(&block).unwrap();
    }
    assert_eq!(seen.len(), 40, "the randomness changes with every block");
    // Charlie holds 3/4 of the bond: ~600 of 800 slots (binomial sd ~12).
    assert!(
        (540..=660).contains(&charlie_slots),
        "Charlie led {charlie_slots} of 800 slots"
    );
}

pub(crate) fn receipt(worker: &str, seq: u32, tokens: u32, epoch: u32) -> Receipt {
    let body = ReceiptBody {
        worker: account(worker),
        client: account("//Dave"),
        model: model(),
        layers: LayerRange::new(0, 30).unwrap(),
        session: [9; 16],
        epoch,
        seq,
        position_start: seq * 1000,
        position_end: seq * 1000 + tokens,
        commitment: blake2_256(&seq.to_le_bytes()),
        input_commitment: blake2_256(&[seq as u8; 3]),
        adapter: None,
    };
    Receipt::sign(body, &pair(worker), &pair("//Dave"))
}

#[test]
fn receipts_in_a_block_are_paid_after_their_check_window() {
    let mut chain = Chain::new();
    let escrow = chain.sign(
        "//Dave",
        0,
        Call::Ponw(PonwCall::DepositEscrow {
            amount: 1_000 * UNIT,
        }),
    );
    chain.produce(vec![escrow]);
    let submit = chain.sign(
        "//Charlie",
        0,
        Call::Ponw(PonwCall::SubmitReceipts {
            receipts: vec![receipt("//Bob", 0, 64, 0), receipt("//Bob", 1, 36, 0)],
        }),
    );
    let heartbeat = chain.sign("//Bob", 0, chain.heartbeat("//Bob"));
    let probed = chain.sign("//Alice", 0, chain.probe_passed("//Bob"));
    let bob = chain.free("//Bob");
    let (block, events, rejected) = chain.produce(vec![submit, heartbeat, probed]);
    assert_eq!((block.extrinsics.len(), rejected), (3, 0));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::ReceiptAccepted { .. }))
            .count(),
        2
    );
    // System.Events holds the same events, the receipts' under the first extrinsic, in
    // the Ponw pallet's variant of the runtime event enum.
    let stored = crate::system::EVENTS.get(&chain.state).unwrap().unwrap();
    assert_eq!(
        stored.iter().map(|r| r.event.0.clone()).collect::<Vec<_>>(),
        events
    );
    let accepted: Vec<_> = stored
        .iter()
        .filter(|r| matches!(r.event.0, Event::ReceiptAccepted { .. }))
        .collect();
    assert_eq!(accepted.len(), 2);
    for record in accepted {
        assert_eq!(record.phase, crate::events::Phase::ApplyExtrinsic(0));
        assert_eq!(
            parity_scale_codec::Encode::encode(&record.event)[0],
            <neuroshard_ponw::Ponw as neuroshard_support::Pallet>::INDEX
        );
    }
    // The client's escrow pays 0.2 NSHD per token, half burned, half to the worker, but
    // only when the receipts' check window closes (block 2 + 10); until then the fee is
    // held and the tokens are not credited.
    let fee_to_bob = 64 * UNIT / 5 / 2 + 36 * UNIT / 5 / 2;
    let settle_at = 2 + test_config().params.ponw.spot_check_blocks;
    let mut paid = Vec::new();
    let mut settled = Vec::new();
    for n in 3..=15 {
        let (block, events, _) = chain.produce(vec![]);
        assert_eq!(block.header.number, n);
        if n < settle_at {
            let uptime = if n >= 5 { UNIT } else { 0 };
            assert_eq!(
                chain.free("//Bob"),
                bob + uptime,
                "no fee is paid before block {settle_at}"
            );
        }
        let stored = crate::system::EVENTS.get(&chain.state).unwrap();
        let stored: Vec<_> = stored.unwrap_or_default();
        assert_eq!(
            stored.len(),
            events.len(),
            "block {n}: System.Events is this block's"
        );
        for record in &stored {
            if matches!(record.event.0, Event::RewardPaid { .. }) {
                // Epoch payouts happen before the block's extrinsics.
                assert_eq!(record.phase, crate::events::Phase::Initialization);
            }
        }
        for e in events {
            match e {
                Event::RewardPaid { .. } => paid.push((n, e)),
                Event::EarningsSettled { .. } => settled.push((n, e)),
                _ => {}
            }
        }
    }
    assert_eq!(
        settled,
        vec![(
            settle_at,
            Event::EarningsSettled {
                worker: account("//Bob"),
                receipts: 2,
                earned: fee_to_bob,
                tokens: 100,
            }
        )]
    );
    let reward = |epoch, tokens: u64, uptime_minutes, reward| Event::RewardPaid {
        account: account("//Bob"),
        epoch,
        tokens,
        layer_tokens: tokens * 30,
        uptime_minutes,
        uptime_credit: uptime_minutes * 1_000_000,
        training: 0,
        reward,
    };
    // Epoch 0 pays Bob's uptime minute; his tokens count in epoch 2, where they settled.
    assert_eq!(
        paid,
        vec![
            (5, reward(0, 0, 1, UNIT)),
            (15, reward(2, 100, 0, 100 * UNIT / 10))
        ]
    );
    assert_eq!(
        chain.free("//Bob"),
        bob + fee_to_bob + UNIT + 100 * UNIT / 10,
        "heartbeats are fee-free"
    );
}

#[derive(Debug, Clone)]
enum Action {
    Transfer(usize, usize, u128),
    Bond(usize, u128),
    Unbond(usize, u128),
    Withdraw(usize),
    Receipts(u32),
    Heartbeat,
    Probe,
    EmptyBlock,
}

const USERS: [&str; 4] = ["//Alice", "//Bob", "//Charlie", "//Dave"];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..4usize, 0..4usize, 0..3_000_000 * UNIT).prop_map(|(a, b, x)| Action::Transfer(a, b, x)),
        (0..4usize, 0..2_000 * UNIT).prop_map(|(a, x)| Action::Bond(a, x)),
        (0..4usize, 0..2_000 * UNIT).prop_map(|(a, x)| Action::Unbond(a, x)),
        (0..4usize).prop_map(Action::Withdraw),
        (1..50u32).prop_map(Action::Receipts),
        Just(Action::Heartbeat),
        Just(Action::Probe),
        Just(Action::EmptyBlock),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the author puts in blocks (including calls that fail and are left out),
    /// a second node executing the same blocks reaches the same state root every block,
    /// and total issuance always equals the sum of all accounts.
    #[test]
    fn same_blocks_same_state_root(actions in proptest::collection::vec(action(), 1..25)) {
        let mut author = Chain::new();
        let mut follower = Chain::new();
        let escrow = author.sign("//Dave", 0, Call::Ponw(PonwCall::DepositEscrow { amount: 10_000 * UNIT }));
        let (block, _, _) = author.produce(vec![escrow]);
        follower.import(&block).unwrap();
        let mut nonces = [0u64, 0, 0, 1];
        let mut seq = 0u32;
        for chunk in actions.chunks(3) {
            let mut xts = Vec::new();
            for action in chunk {
                let (who, call) = match action {
                    Action::Transfer(a, b, x) => (*a, transfer(USERS[*b], *x)),
                    Action::Bond(a, x) => (*a, Call::Staking(StakingCall::Bond { amount: *x })),
                    Action::Unbond(a, x) => (*a, Call::Staking(StakingCall::Unbond { amount: *x })),
                    Action::Withdraw(a) => (*a, Call::Staking(StakingCall::WithdrawUnbonded)),
                    Action::Receipts(n) => {
                        seq += 1;
                        let epoch = ((author.head.number + 1) / 5) as u32;
                        (2, Call::Ponw(PonwCall::SubmitReceipts { receipts: vec![receipt("//Bob", seq, *n, epoch)] }))
                    }
                    Action::Heartbeat => {
                        (1, author.heartbeat("//Bob"))
                    }
                    Action::Probe => (0, author.probe_passed("//Bob")),
                    Action::EmptyBlock => continue,
                };
                xts.push(author.sign(USERS[who], nonces[who], call));
                nonces[who] += 1;
            }
            let (block, _, _) = author.produce(xts);
            // Resynchronise nonces with what was actually included.
            for (i, user) in USERS.iter().enumerate() {
                nonces[i] = author.runtime.account(&author.state, &account(user)).unwrap().nonce;
            }
            follower.import(&block).unwrap();
            prop_assert_eq!(follower.state.root(), author.state.root());
            let sum: u128 = neuroshard_balances::ACCOUNTS
                .entries(&author.state).unwrap().iter().map(|(_, d)| neuroshard_balances::AccountData::from(d).total()).sum();
            prop_assert_eq!(sum, neuroshard_balances::total_issuance(&author.state).unwrap());
        }
    }
}

/// Proof of Training through blocks: two holders of a shard submit gradient receipts
/// and report the same round result; the round closes and both are paid.
#[test]
fn training_rounds_close_and_pay_through_extrinsics() {
    use neuroshard_primitives::{GradientReceipt, GradientReceiptBody, RoundResult, TrainingCall};
    let mut chain = Chain::new();
    // Training rounds are per canonical range (the fixture's are 0-10, 10-20, 20-30).
    let layers = LayerRange::new(0, 10).unwrap();
    let register = chain.sign(
        "//Charlie",
        0,
        Call::Ponw(PonwCall::RegisterWorker {
            model: model(),
            shards: vec![LayerRange::new(0, 30).unwrap()],
        }),
    );
    chain.produce(vec![register]);
    let receipt = |uri: &str| {
        let body = GradientReceiptBody {
            worker: account(uri),
            model: model(),
            layers,
            round: 0,
            base_adapter: Hash::zero(),
            pseudo_gradient: blake2_256(uri.as_bytes()),
            payload_bytes: 64,
            loss_before: 3_000_000,
            loss_after: 2_000_000,
        };
        GradientReceipt::sign(body, &pair(uri))
    };
    let (rb, rc) = (receipt("//Bob"), receipt("//Charlie"));
    let mut accepted = vec![rb.body.pseudo_gradient, rc.body.pseudo_gradient];
    accepted.sort();
    let result = RoundResult {
        model: model(),
        layers,
        round: 0,
        accepted,
        adapter: blake2_256(b"adapter v1"),
    };
    let submit = |uri: &str, nonce, r: &GradientReceipt| {
        chain.sign(
            uri,
            nonce,
            Call::Training(TrainingCall::SubmitGradientReceipt { receipt: r.clone() }),
        )
    };
    let xts = vec![submit("//Bob", 0, &rb), submit("//Charlie", 1, &rc)];
    let (_, _, rejected) = chain.produce(xts);
    assert_eq!(rejected, 0);
    let (bob, charlie) = (chain.free("//Bob"), chain.free("//Charlie"));
    let report = |uri: &str, nonce| {
        chain.sign(
            uri,
            nonce,
            Call::Training(TrainingCall::ReportRoundResult {
                result: result.clone(),
            }),
        )
    };
    let xts = vec![report("//Bob", 1), report("//Charlie", 2)];
    let fees: Vec<u128> = xts
        .iter()
        .map(|xt| chain.runtime.fee_of(&chain.state, xt).unwrap())
        .collect();
    let (_, events, rejected) = chain.produce(xts);
    assert_eq!(rejected, 0);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TrainingRoundFinalized {
            round: 0,
            accepted: 2,
            rejected: 0,
            ..
        }
    )));
    // Closed, unpaid until the drawn validator verifies it.
    let Some(verifier) = events.iter().find_map(|e| match e {
        Event::TrainingVerificationRequested { verifier, .. } => Some(verifier.clone()),
        _ => None,
    }) else {
        panic!("no verification requested: {events:?}");
    };
    assert_eq!(chain.free("//Bob"), bob - fees[0]);
    let uri = ["//Alice", "//Bob", "//Charlie", "//Dave"]
        .into_iter()
        .find(|u| account(u) == verifier)
        .expect("a dev validator");
    let check = |who: &str| neuroshard_primitives::ContributionCheck {
        worker: account(who),
        outcome: neuroshard_primitives::ContributionOutcome::Improved,
        loss_before: 3_000_000,
        loss_after: 2_000_000,
    };
    let verification = neuroshard_primitives::RoundVerification {
        model: model(),
        layers,
        round: 0,
        checks: vec![check("//Bob"), check("//Charlie")],
        adapter: neuroshard_primitives::AdapterOutcome::Adopted,
        held_out_before: 3_000_000,
        held_out_after: 2_900_000,
    };
    let nonce = chain
        .runtime
        .account(&chain.state, &verifier)
        .unwrap()
        .nonce;
    let xt = chain.sign(
        uri,
        nonce,
        Call::Training(TrainingCall::SubmitRoundVerification { verification }),
    );
    let (_, _, rejected) = chain.produce(vec![xt]);
    assert_eq!(rejected, 0);
    // The round's 2 NSHD split between its two accepted, verified receipts.
    assert_eq!(chain.free("//Bob"), bob + UNIT - fees[0]);
    assert_eq!(chain.free("//Charlie"), charlie + UNIT - fees[1]);
    let params = Runtime::params(&chain.state).unwrap();
    assert_eq!(params.training.training_reward, 2 * UNIT);
}
