//! Tests of receipts and the epoch payout, including every rejection. The helpers are
//! shared with the spot-check and liveness tests.

use super::*;
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::model_chunks::ChunkTree;
use neuroshard_primitives::{
    blake2_256, AccountId, Event, Keypair, LayerRange, Receipt, ReceiptBody, UNIT,
};
use neuroshard_support::{BlockContext, StateDb};
use sp_core::Pair as _;

pub(crate) const LAYERS: u16 = 30;

pub(crate) fn model() -> Hash {
    blake2_256(b"model")
}

pub(crate) fn key(uri: &str) -> (Keypair, AccountId) {
    let pair = keypair_from_uri(uri).unwrap();
    let account = pair.public().into();
    (pair, account)
}

/// A stand-in model file (proof of possession only needs bytes and their chunk tree).
pub(crate) fn model_file() -> Vec<u8> {
    (0..20_000u32).map(|i| (i * 31 % 253) as u8).collect()
}

/// The chunk trees of the stand-in file's layers (see `fixtures::layer_bytes`).
pub(crate) fn chunk_trees() -> Vec<ChunkTree> {
    fixtures::layer_trees(&fixtures::layer_bytes(&model_file(), LAYERS), 256)
}

/// The fixture's parameters for the stand-in model. The arithmetic of these tests is that
/// of the fixture's defaults: 0.1 NSHD per token and 1 NSHD per minute earned, 0.2 NSHD
/// per token paid by the client (half burned), escrow released after 5 blocks, a 100
/// NSHD bond, 50 NSHD slashed per failed check, no receipt sampled.
pub(crate) fn params() -> Params {
    fixtures::params(fixtures::model_with_chunks(model(), &chunk_trees()))
}

pub(crate) fn ctx(epoch: u32, minute: u64) -> BlockContext {
    BlockContext {
        number: u64::from(epoch) * 10 + 1,
        parent_hash: blake2_256(&minute.to_le_bytes()),
        slot: 0,
        author: key("//Alice").1,
        epoch,
        minute,
        randomness: Hash::zero(),
    }
}

/// Genesis with //Bob serving 10-20 and //Charlie serving 0-10 and 20-30.
pub(crate) fn genesis() -> StateDb {
    // The workers hold exactly their bond, so their free balance is what they earn.
    let bond = params().worker_bond;
    let range = |a, b| LayerRange::new(a, b).unwrap();
    fixtures::Genesis::new(params())
        .fund(key("//Dave").1, 1_000 * UNIT)
        .fund(key("//Bob").1, bond)
        .fund(key("//Charlie").1, bond)
        .fund(key("//Eve").1, bond)
        .worker(key("//Bob").1, vec![range(10, 20)])
        .worker(key("//Charlie").1, vec![range(0, 10), range(20, 30)])
        .escrow(key("//Dave").1, 100 * UNIT)
        .build()
}

pub(crate) fn receipt(
    worker: &str,
    layers: (u16, u16),
    seq: u32,
    positions: (u32, u32),
    epoch: u32,
) -> Receipt {
    let (wpair, waccount) = key(worker);
    let (cpair, caccount) = key("//Dave");
    let body = ReceiptBody {
        worker: waccount,
        client: caccount,
        model: model(),
        layers: LayerRange::new(layers.0, layers.1).unwrap(),
        session: [1; 16],
        epoch,
        seq,
        position_start: positions.0,
        position_end: positions.1,
        commitment: blake2_256(&crate::evidence_tests::committed(positions, seq).encode()),
        input_commitment: blake2_256(&[seq as u8; 3]),
        adapter: None,
    };
    Receipt::sign(body, &wpair, &cpair)
}

/// Opens `ctx`'s minute (as the runtime does at the start of every block) and runs a
/// heartbeat of `who` answering its challenge from the model bytes `file`.
pub(crate) fn beat(
    state: &mut StateDb,
    ctx: &BlockContext,
    who: &AccountId,
    minute: u64,
    file: &[u8],
) -> Result<Vec<Event>> {
    apply(state, |o| liveness::record_minute_seed(o, ctx))?;
    let layers = fixtures::layer_bytes(file, LAYERS);
    let trees = fixtures::layer_trees(&layers, 256);
    let c = challenge(state, who)?.ok_or(Error::NotAWorker)?;
    let (chunk, proof) = fixtures::answer(&c, &layers, &trees);
    apply(state, |o| heartbeat(o, ctx, who, minute, &chunk, &proof))
}

/// The validators of these tests: //Alice alone, so she probes every worker.
pub(crate) fn validators() -> Vec<AccountId> {
    vec![key("//Alice").1]
}

/// [`validators`] with their staking bonds (none: equal chances), as spot checks draw
/// from them.
pub(crate) fn checkers() -> Vec<(AccountId, Balance)> {
    validators().into_iter().map(|v| (v, 0)).collect()
}

/// Proves `who`'s minute of `ctx`: its heartbeat and //Alice's passed probe.
pub(crate) fn prove_minute(state: &mut StateDb, ctx: &BlockContext, who: &AccountId) {
    beat(state, ctx, who, ctx.minute, &model_file()).unwrap();
    let alice = key("//Alice").1;
    apply(state, |o| {
        report_liveness(
            o,
            ctx,
            &alice,
            &validators(),
            ctx.minute,
            &[(
                who.clone(),
                crate::ProbeParams::default().reference_throughput,
            )],
            &[],
        )
    })
    .unwrap();
}

pub(crate) fn apply(
    state: &mut StateDb,
    f: impl FnOnce(&mut Overlay<'_>) -> Result<()>,
) -> Result<Vec<Event>> {
    state.commit(f)
}

/// Runs the block starts that close the check window of receipts included in block
/// `included` (their draw and their settlement), as the runtime does.
pub(crate) fn close_window(state: &mut StateDb, included: u64) {
    let p = crate::params(&*state).unwrap();
    let settle = included + p.spot_check_blocks.max(settlement::DRAW_DELAY + 1);
    for number in [included + settlement::DRAW_DELAY, settle] {
        let block = BlockContext {
            number,
            ..ctx(0, 5)
        };
        apply(state, |o| settlement::on_initialize(o, &block, &checkers())).unwrap();
    }
}

/// Gives registered worker `uri` `amount` more bond (minted, then reserved).
pub(crate) fn add_bond(state: &mut StateDb, uri: &str, amount: Balance) {
    let who = key(uri).1;
    apply(state, |o| {
        balances::mint(o, &who, amount)?;
        balances::reserve(o, &who, amount)?;
        let mut info = worker(o, &who)?.expect("a registered worker");
        info.bond += amount;
        WORKERS.insert(o, &who, &info);
        Ok(())
    })
    .unwrap();
}

#[test]
fn receipts_and_uptime_are_paid_by_the_formula() {
    let mut state = genesis();
    let batch = vec![
        receipt("//Bob", (10, 20), 0, (0, 32), 0),
        receipt("//Bob", (10, 20), 1, (32, 40), 0),
        receipt("//Charlie", (0, 10), 0, (0, 40), 0),
        receipt("//Charlie", (20, 30), 0, (0, 40), 0),
    ];
    apply(&mut state, |o| submit_receipts(o, &ctx(0, 5), &batch)).unwrap();
    close_window(&mut state, ctx(0, 5).number);
    // Fees went to the workers when the window closed: per receipt, ceil(layer_tokens x 0.2 / 30) NSHD
    // of which the (rounded-up) half is burned.
    let worker_share = |layer_tokens: u128| {
        let fee = (layer_tokens * (UNIT / 5)).div_ceil(30);
        fee - fee.div_ceil(2)
    };
    let fee_share = |uri: &str| balances::account(&state, &key(uri).1).unwrap().free;
    let (bob_fees, charlie_fees) = (fee_share("//Bob"), fee_share("//Charlie"));
    assert_eq!(bob_fees, worker_share(320) + worker_share(80));
    assert_eq!(charlie_fees, 2 * worker_share(400));
    prove_minute(&mut state, &ctx(0, 5), &key("//Bob").1);
    prove_minute(&mut state, &ctx(0, 6), &key("//Bob").1);
    let events = apply(&mut state, |o| on_epoch_start(o, &ctx(1, 7))).unwrap();

    // Bob: 40 tokens x 10 layers; 2 minutes. Charlie: 40 tokens x 20 layers.
    let bob = balances::account(&state, &key("//Bob").1).unwrap().free - bob_fees;
    let charlie = balances::account(&state, &key("//Charlie").1).unwrap().free - charlie_fees;
    assert_eq!(bob, 40 * 10 * (UNIT / 10) / 30 + 2 * UNIT);
    assert_eq!(charlie, 40 * 20 * (UNIT / 10) / 30);
    // One token through the whole pipeline earns 0.1 NSHD in total, less at most one
    // base unit of rounding per paid account (never more).
    let token_total = bob - 2 * UNIT + charlie;
    assert!(token_total <= 40 * UNIT / 10 && 40 * UNIT / 10 - token_total <= 2);
    let paid: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RewardPaid {
                tokens,
                uptime_minutes,
                reward,
                epoch: 0,
                ..
            } => Some((*tokens, *uptime_minutes, *reward)),
            _ => None,
        })
        .collect();
    assert_eq!(paid.len(), 2);
    assert!(paid.contains(&(40, 2, bob)));
    assert!(paid.contains(&(80, 0, charlie)));
    assert!(rewards::tallies(&state).unwrap().is_empty());
}

fn assert_rejected(
    state: &StateDb,
    batch: Vec<Receipt>,
    epoch: u32,
    index: u32,
    reason: RejectReason,
) {
    let mut o = Overlay::new(state);
    let err = o
        .transactional(|o| submit_receipts(o, &ctx(epoch, 0), &batch))
        .unwrap_err();
    assert_eq!(err, Error::ReceiptRejected { index, reason });
    let (changes, events) = o.into_parts();
    assert!(
        changes.is_empty() && events.is_empty(),
        "a rejected batch changed state"
    );
}

#[test]
fn every_bad_receipt_is_rejected_without_state_change() {
    let mut state = genesis();
    let good = receipt("//Bob", (10, 20), 0, (0, 8), 0);
    apply(&mut state, |o| {
        submit_receipts(o, &ctx(0, 0), std::slice::from_ref(&good))
    })
    .unwrap();
    let fresh = || receipt("//Bob", (10, 20), 5, (8, 16), 0);

    assert_rejected(&state, vec![good.clone()], 0, 0, RejectReason::Replay);
    let mut forged = receipt("//Bob", (10, 20), 6, (16, 24), 0);
    forged.body.position_end = 1_000;
    assert_rejected(
        &state,
        vec![forged.clone()],
        0,
        0,
        RejectReason::BadSignature,
    );
    assert_rejected(
        &state,
        vec![receipt("//Eve", (10, 20), 0, (0, 8), 0)],
        0,
        0,
        RejectReason::UnknownWorker,
    );
    assert_rejected(
        &state,
        vec![receipt("//Bob", (0, 10), 0, (0, 8), 0)],
        0,
        0,
        RejectReason::LayersNotServed,
    );
    assert_rejected(
        &state,
        vec![receipt("//Bob", (10, 20), 6, (0, 8), 3)],
        0,
        0,
        RejectReason::StaleEpoch,
    );
    assert_rejected(
        &state,
        vec![receipt("//Bob", (10, 20), 6, (0, 8), 0)],
        2,
        0,
        RejectReason::StaleEpoch,
    );
    assert_rejected(
        &state,
        vec![receipt("//Bob", (10, 20), 6, (8, 8), 0)],
        0,
        0,
        RejectReason::BadShape,
    );
    let mut other_model = fresh();
    other_model.body.model = blake2_256(b"other");
    assert_rejected(&state, vec![other_model], 0, 0, RejectReason::WrongModel);
}

/// The `ReceiptAccepted` ids and the (id, reason) of every `ReceiptRejected` in `events`.
fn verdicts(events: &[Event]) -> (Vec<Hash>, Vec<(Hash, RejectReason)>) {
    let mut accepted = vec![];
    let mut rejected = vec![];
    for e in events {
        match e {
            Event::ReceiptAccepted { id, .. } => accepted.push(*id),
            Event::ReceiptRejected { id, reason, .. } => rejected.push((*id, *reason)),
            _ => {}
        }
    }
    (accepted, rejected)
}

#[test]
fn bad_receipts_in_a_batch_are_refused_and_the_good_ones_paid() {
    let mut state = genesis();
    let first = receipt("//Bob", (10, 20), 0, (0, 8), 0);
    apply(&mut state, |o| {
        submit_receipts(o, &ctx(0, 0), std::slice::from_ref(&first))
    })
    .unwrap();
    close_window(&mut state, ctx(0, 0).number);
    let good = receipt("//Bob", (10, 20), 5, (8, 16), 0);
    let mut forged = receipt("//Bob", (10, 20), 6, (16, 24), 0);
    forged.body.position_end = 1_000; // inflated token count, signatures now wrong
    let later = receipt("//Charlie", (0, 10), 0, (0, 40), 0);
    let batch = vec![
        good.clone(),
        first.clone(),                            // replay of an accepted receipt
        good.clone(),                             // duplicate in the batch
        forged.clone(),                           // forged
        receipt("//Eve", (10, 20), 0, (0, 8), 0), // not a worker
        later.clone(),
    ];
    let bob_before = balances::account(&state, &key("//Bob").1).unwrap().free;
    let events = apply(&mut state, |o| submit_receipts(o, &ctx(0, 0), &batch)).unwrap();
    close_window(&mut state, ctx(0, 0).number);
    let (accepted, rejected) = verdicts(&events);
    assert_eq!(accepted, vec![good.body.id(), later.body.id()]);
    assert_eq!(
        rejected,
        vec![
            (first.body.id(), RejectReason::Replay),
            (good.body.id(), RejectReason::Duplicate),
            (forged.body.id(), RejectReason::BadSignature),
            (batch[4].body.id(), RejectReason::UnknownWorker),
        ]
    );
    // Bob was paid for `good` only: 8 tokens x 10 layers, his share of the fee.
    let fee = (80 * (UNIT / 5)).div_ceil(30);
    let bob_after = balances::account(&state, &key("//Bob").1).unwrap().free;
    assert_eq!(bob_after - bob_before, fee - fee.div_ceil(2));
    let bob_tally = rewards::tallies(&state)
        .unwrap()
        .into_iter()
        .find(|(who, _)| *who == key("//Bob").1)
        .unwrap()
        .1;
    assert_eq!(
        bob_tally.tokens, 16,
        "the first receipt and `good`, nothing else"
    );
}

#[test]
fn registration_is_checked() {
    let mut state = genesis();
    let eve = key("//Eve").1;
    let range = |a, b| LayerRange::new(a, b).unwrap();
    assert_eq!(
        apply(&mut state, |o| register_worker(
            o,
            1,
            &eve,
            blake2_256(b"x"),
            vec![range(0, 10)]
        )),
        Err(Error::WrongModel(blake2_256(b"x")))
    );
    for shards in [vec![], vec![range(0, 31)], vec![range(0, 10), range(5, 15)]] {
        assert_eq!(
            apply(&mut state, |o| register_worker(
                o,
                1,
                &eve,
                model(),
                shards.clone()
            )),
            Err(Error::BadShards { num_layers: 30 })
        );
    }
    apply(&mut state, |o| {
        register_worker(o, 1, &eve, model(), vec![range(20, 30), range(0, 10)])
    })
    .unwrap();
    assert!(worker(&state, &eve)
        .unwrap()
        .unwrap()
        .serves(&range(22, 25)));
}

#[test]
fn escrow_pays_fees_and_is_released_only_after_the_delay() {
    let mut state = genesis();
    // Bond enough for the big receipts' exposure.
    add_bond(&mut state, "//Bob", 1_000 * UNIT);
    let dave = key("//Dave").1;
    // 100 NSHD of escrow pays for at most 500 full-pipeline tokens at 0.2 NSHD.
    let big = receipt("//Bob", (10, 20), 0, (0, 1_600), 0);
    assert_rejected(&state, vec![big], 0, 0, RejectReason::InsufficientEscrow);
    let a = receipt("//Bob", (10, 20), 0, (0, 1_000), 0);
    let b = receipt("//Bob", (10, 20), 1, (1_000, 1_600), 0);
    // Together they exceed the escrow: the first is paid, the second refused.
    let mut trial = state.clone();
    let events = apply(&mut trial, |o| {
        submit_receipts(o, &ctx(0, 0), &[a.clone(), b.clone()])
    })
    .unwrap();
    assert_eq!(
        verdicts(&events),
        (
            vec![a.body.id()],
            vec![(b.body.id(), RejectReason::InsufficientEscrow)]
        )
    );
    apply(&mut state, |o| submit_receipts(o, &ctx(0, 0), &[a])).unwrap();
    let left = escrow::escrow(&state, &dave).unwrap().amount;
    assert_eq!(left, 100 * UNIT - (10_000 * (UNIT / 5)).div_ceil(30));

    assert_eq!(
        apply(&mut state, |o| escrow::withdraw(o, &ctx(0, 0), &dave)),
        Err(Error::ReleaseNotRequested)
    );
    apply(&mut state, |o| {
        escrow::request_release(o, &ctx(0, 0), &dave)
    })
    .unwrap();
    let at = ctx(0, 0).number + 5;
    assert_eq!(
        apply(&mut state, |o| escrow::withdraw(o, &ctx(0, 0), &dave)),
        Err(Error::EscrowLocked { until: at })
    );
    // Still pays for work while the release is pending.
    apply(&mut state, |o| {
        submit_receipts(o, &ctx(0, 0), &[receipt("//Bob", (10, 20), 2, (0, 10), 0)])
    })
    .unwrap();
    let free_before = balances::account(&state, &dave).unwrap().free;
    let mut later = ctx(0, 0);
    later.number = at;
    apply(&mut state, |o| escrow::withdraw(o, &later, &dave)).unwrap();
    let account = balances::account(&state, &dave).unwrap();
    // The fees of receipts still in their check window stay reserved: a failed check
    // would hand them back, a passed one pays them.
    let held = settlement::holding(&state, &key("//Bob").1).unwrap().fees;
    assert!(held > 0);
    assert_eq!(account.reserved, held);
    assert!(account.free > free_before);
    assert_eq!(
        escrow::escrow(&state, &dave).unwrap(),
        escrow::Escrow::default()
    );
    close_window(&mut state, ctx(0, 0).number);
    assert_eq!(balances::account(&state, &dave).unwrap().reserved, 0);
    assert_eq!(
        settlement::holding(&state, &key("//Bob").1).unwrap().fees,
        0
    );
}

#[test]
fn genesis_refuses_parameters_where_self_dealing_pays() {
    let state = StateDb::new();
    let mut o = Overlay::new(&state);
    let mut p = params();
    p.fee_burn_permill = 400_000;
    assert_eq!(build_genesis(&mut o, &p, &[]), Err(Error::BurnBelowReward));
}

proptest::proptest! {
    /// A client and a worker owned by one party, trading any amount of work through
    /// any shard, never end an epoch richer: the burn covers what the epoch mints.
    #[test]
    fn self_dealing_never_profits(jobs in proptest::collection::vec((0u16..3, 1u32..3_000), 1..20)) {
        let mut state = genesis();
        let eve = key("//Eve");
        let mallory = key("//Mallory");
        let range = |s: u16| LayerRange::new(s * 10, s * 10 + 10).unwrap();
        apply(&mut state, |o| {
            balances::mint(o, &mallory.1, 100_000 * UNIT)?;
            escrow::deposit(o, &mallory.1, 50_000 * UNIT)?;
            register_worker(o, 0, &eve.1, model(), vec![range(0), range(1), range(2)])
        }).unwrap();
        add_bond(&mut state, "//Eve", 10_000 * UNIT);
        let total = |s: &StateDb| {
            let a = balances::account(s, &eve.1).unwrap().total();
            let b = balances::account(s, &mallory.1).unwrap().total();
            a + b
        };
        let before = total(&state);
        let receipts: Vec<Receipt> = jobs.iter().enumerate().map(|(i, (s, n))| {
            let body = ReceiptBody {
                worker: eve.1.clone(),
                client: mallory.1.clone(),
                model: model(),
                layers: range(*s),
                session: [2; 16],
                epoch: 0,
                seq: i as u32,
                position_start: 0,
                position_end: *n,
                commitment: blake2_256(b"c"),
                input_commitment: blake2_256(b"i"),
                adapter: None,
            };
            Receipt::sign(body, &eve.0, &mallory.0)
        }).collect();
        apply(&mut state, |o| submit_receipts(o, &ctx(0, 0), &receipts)).unwrap();
        close_window(&mut state, ctx(0, 0).number);
        apply(&mut state, |o| on_epoch_start(o, &ctx(1, 0))).unwrap();
        proptest::prop_assert!(total(&state) <= before, "colluding pair gained {}", total(&state) - before);
    }
}

#[test]
fn sessions_are_pruned_after_the_window() {
    let mut state = genesis();
    apply(&mut state, |o| {
        submit_receipts(o, &ctx(0, 0), &[receipt("//Bob", (10, 20), 0, (0, 8), 0)])
    })
    .unwrap();
    apply(&mut state, |o| on_epoch_start(o, &ctx(1, 0))).unwrap();
    assert_eq!(receipts::SESSIONS.entries(&state).unwrap().len(), 1);
    apply(&mut state, |o| on_epoch_start(o, &ctx(2, 0))).unwrap();
    assert!(receipts::SESSIONS.entries(&state).unwrap().is_empty());
}

#[test]
fn bond_more_raises_what_a_worker_answers_for() {
    let mut state = genesis();
    let ((_, bob), (_, dave)) = (key("//Bob"), key("//Dave"));
    // 11,000 layer-tokens through Bob's 10 layers: more unsettled work than his bond
    // answers for.
    let big = || receipt("//Bob", (10, 20), 0, (0, 1_100), 0);
    let (fee, _) = escrow::fee_for(&params(), 11_000);
    let needed = settlement::exposure_of(fee);
    assert!(needed > params().worker_bond);
    let refused = apply(&mut state, |o| submit_receipts(o, &ctx(0, 0), &[big()]));
    assert!(
        matches!(
            refused,
            Err(Error::ReceiptRejected {
                reason: RejectReason::ExposureExceeded,
                ..
            })
        ),
        "{refused:?}"
    );

    // Not a worker, nothing to add, more than is free: refused, nothing changes.
    let root = state.root();
    let not_worker = apply(&mut state, |o| bond_more(o, &dave, UNIT));
    assert!(
        matches!(not_worker, Err(Error::NotAWorker)),
        "{not_worker:?}"
    );
    let zero = apply(&mut state, |o| bond_more(o, &bob, 0));
    assert!(matches!(zero, Err(Error::ZeroAmount)), "{zero:?}");
    let broke = apply(&mut state, |o| bond_more(o, &bob, UNIT));
    assert!(
        matches!(broke, Err(Error::Balances(_))),
        "Bob holds only his bond"
    );
    assert_eq!(state.root(), root);

    let more = needed - params().worker_bond;
    apply(&mut state, |o| {
        Ok(neuroshard_balances::transfer(o, &dave, &bob, more)?)
    })
    .unwrap();
    let events = apply(&mut state, |o| bond_more(o, &bob, more)).unwrap();
    assert_eq!(
        events,
        vec![Event::WorkerBondIncreased {
            worker: bob.clone(),
            amount: more,
            bond: needed,
        }]
    );
    assert_eq!(worker(&state, &bob).unwrap().unwrap().bond, needed);
    assert_eq!(neuroshard_balances::account(&state, &bob).unwrap().free, 0);
    apply(&mut state, |o| submit_receipts(o, &ctx(0, 0), &[big()])).unwrap();
}
