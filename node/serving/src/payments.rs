//! The worker's side of getting paid for serving a session (the client's side is
//! [`crate::billing::SessionBill`]). A client receives its outputs before it pays, so a
//! provider serves on credit, but only a little. [`PaymentLedger`] keeps, per session,
//! the peer that opened it, how far this worker's computation went and how far the client
//! has paid (receipts it counter-signed and handed back with [`InferenceCall::Pay`]);
//! a forward call that starts more than [`PAYMENT_INCREMENT`] positions past the paid
//! end, or would leave more than [`MAX_CREDIT`] unpaid (a request of at most
//! [`MAX_REQUEST`] positions past one increment), is refused ("payment due"): a long
//! prompt comes in pieces, paid between them. A peer with more than
//! [`MAX_PEER_DEBT`] unpaid positions across its sessions opens no new one. Payment is only taken when the
//! client's escrow covers every receipt of it this worker holds ([`ClientFunds`]).
//!
//! The counter-signed receipts are kept: [`claim_unsubmitted`] submits those the client
//! has not put on chain (nor in the pool) [`UNCLAIMED_AFTER`] after their session went
//! quiet, so a client that takes the work and never submits its receipts pays anyway.
//! What a worker can lose to a client that pays nothing: [`MAX_CREDIT`] positions per
//! session, and at most [`MAX_PEER_DEBT`] positions per peer identity while the ledger
//! remembers its sessions ([`DEBT_MEMORY`]).
//!
//! [`InferenceCall::Pay`]: crate::protocol::InferenceCall::Pay

pub use crate::protocol::{MAX_CREDIT, MAX_PAY_RECEIPTS, MAX_REQUEST, PAYMENT_INCREMENT};
use neuroshard_client::{hex_hash, Client};
use neuroshard_network::PeerId;
use neuroshard_primitives::{
    crypto, AccountId, Balance, Call, Hash, Keypair, LayerRange, PonwCall, Receipt, ReceiptBody,
    SessionId,
};
use neuroshard_runtime::{ponw, RuntimeParams};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Unpaid positions across one peer's sessions beyond which it opens no new session.
pub const MAX_PEER_DEBT: u32 = 4096;
/// How long the ledger remembers a quiet session (and so its debt).
pub const DEBT_MEMORY: Duration = Duration::from_secs(600);
/// How long after a session went quiet this worker submits the receipts its client
/// counter-signed but did not put on chain.
pub const UNCLAIMED_AFTER: Duration = Duration::from_secs(20);
/// Most sessions the ledger remembers (the quietest are forgotten first).
const MAX_ACCOUNTS: usize = 65_536;
/// How often [`claim_unsubmitted`] looks for quiet sessions.
const CLAIM_CHECK: Duration = Duration::from_secs(5);

/// The least time the chain accepts a receipt for after the epoch it names ends:
/// `receipt_epoch_window` whole epochs of at least one slot a block.
pub fn receipt_horizon(params: &RuntimeParams) -> Duration {
    let blocks =
        u64::from(params.ponw.receipt_epoch_window).saturating_mul(params.system.epoch_length);
    Duration::from_millis(blocks.saturating_mul(params.system.slot_duration_ms))
}

/// Why this node's claims of receipts its clients did not submit could reach the chain
/// too late to be accepted (`None` when they cannot): a session's receipts are claimed
/// [`UNCLAIMED_AFTER`] after it goes quiet, found within [`CLAIM_CHECK`], so a chain
/// whose receipt window is shorter may refuse them as stale and the work goes unpaid.
pub fn claim_horizon_problem(params: &RuntimeParams) -> Option<String> {
    let horizon = receipt_horizon(params);
    let claim = UNCLAIMED_AFTER + CLAIM_CHECK;
    (horizon <= claim).then(|| {
        format!(
            "the chain accepts receipts for as little as {} s after their epoch \
             (receipt_epoch_window {} x epoch_length {} x {} ms slots), not more than the \
             {} s this node waits before submitting receipts a client counter-signed but \
             did not submit: such receipts may be refused as stale and their work go unpaid",
            horizon.as_secs(),
            params.ponw.receipt_epoch_window,
            params.system.epoch_length,
            params.system.slot_duration_ms,
            claim.as_secs()
        )
    })
}

/// Whether a client's escrow covers the fees of receipts it counter-signed.
pub trait ClientFunds: Send + Sync {
    /// True when `client`'s escrow covers the fees of all of `receipts`.
    fn covers(&self, client: &AccountId, receipts: &[&ReceiptBody]) -> anyhow::Result<bool>;
}

impl ClientFunds for Client {
    fn covers(&self, client: &AccountId, receipts: &[&ReceiptBody]) -> anyhow::Result<bool> {
        self.with_best_state(|state, _| escrow_covers(state, client, receipts))
    }
}

/// Whether `client`'s escrow in `state` covers the fees of all of `receipts`. A client
/// that asked for its escrow back is not covered at all: it may withdraw the escrow
/// before receipts of work served now reach a block (the escrow release race `bench
/// econ` found), so it is served no more.
pub fn escrow_covers(
    state: &impl neuroshard_runtime::ReadState,
    client: &AccountId,
    receipts: &[&ReceiptBody],
) -> anyhow::Result<bool> {
    let escrow = ponw::escrow::escrow(state, client)?;
    if escrow.release_at.is_some() {
        return Ok(false);
    }
    let params = ponw::params(state)?;
    let fees: Balance = receipts
        .iter()
        .map(|b| {
            let layer_tokens = u64::from(b.tokens()) * u64::from(b.layers.len());
            ponw::escrow::fee_for(&params, layer_tokens).0
        })
        .sum();
    Ok(escrow.amount >= fees)
}

/// One session's account at this worker (per shard: a route may pass two of its shards).
struct SessionAccount {
    owner: PeerId,
    /// One past the last position computed.
    computed: u32,
    /// One past the last position the client paid for.
    paid: u32,
    /// Receipts the client counter-signed, not yet claimed on chain by this worker.
    kept: Vec<Receipt>,
    last_active: Instant,
}

impl SessionAccount {
    fn debt(&self) -> u32 {
        self.computed.saturating_sub(self.paid)
    }
}

type SessionKey = (SessionId, LayerRange);

/// See the module docs.
pub struct PaymentLedger {
    worker: AccountId,
    model: Hash,
    funds: Arc<dyn ClientFunds>,
    accounts: Mutex<HashMap<SessionKey, SessionAccount>>,
}

impl PaymentLedger {
    /// The ledger of `worker`'s shards of `model`, checking clients' escrow with `funds`.
    pub fn new(worker: AccountId, model: Hash, funds: Arc<dyn ClientFunds>) -> Self {
        Self {
            worker,
            model,
            funds,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `peer` may have `positions` positions from `start_pos` on of `session`
    /// on `layers` computed: at most [`PAYMENT_INCREMENT`] positions before `start_pos`
    /// and [`MAX_CREDIT`] up to their end unpaid, in its own session or a new one (while
    /// the peer's debt is at most [`MAX_PEER_DEBT`]).
    pub fn admit_forward(
        &self,
        peer: PeerId,
        session: SessionId,
        layers: LayerRange,
        start_pos: u32,
        positions: u32,
    ) -> Result<(), String> {
        let now = Instant::now();
        let end = start_pos.saturating_add(positions);
        let mut accounts = self.accounts.lock();
        let (paid, computed) = match accounts.get(&(session, layers)) {
            Some(account) if account.owner != peer => {
                return Err("this session belongs to another peer".into())
            }
            Some(account) => (account.paid, account.computed),
            None => (0, 0),
        };
        if start_pos > paid.saturating_add(PAYMENT_INCREMENT)
            || end > paid.saturating_add(MAX_CREDIT)
        {
            return Err(format!(
                "payment due: positions {paid}..{computed} of this session are unpaid and \
                 this request would take that to {end}; hand back the receipts counter-signed \
                 (and send at most {MAX_REQUEST} positions a request) to continue"
            ));
        }
        if accounts.contains_key(&(session, layers)) {
            return Ok(());
        }
        let debt: u32 = accounts
            .values()
            .filter(|a| a.owner == peer)
            .map(SessionAccount::debt)
            .fold(0, u32::saturating_add);
        if debt > MAX_PEER_DEBT {
            return Err(format!(
                "payment due: {debt} positions of this peer's earlier sessions are unpaid"
            ));
        }
        forget_quiet(&mut accounts, now);
        accounts.insert(
            (session, layers),
            SessionAccount {
                owner: peer,
                computed: 0,
                paid: 0,
                kept: Vec::new(),
                last_active: now,
            },
        );
        Ok(())
    }

    /// Notes that positions up to `end` of `session` on `layers` were computed.
    pub fn computed(&self, session: SessionId, layers: LayerRange, end: u32) {
        if let Some(account) = self.accounts.lock().get_mut(&(session, layers)) {
            account.computed = account.computed.max(end);
            account.last_active = Instant::now();
        }
    }

    /// Takes `peer`'s payment for its session on `model`'s `layers`: receipts of this
    /// worker's work (its own signature on them), counter-signed by a client whose
    /// escrow covers them and every other receipt of that client this worker still
    /// holds. Receipts for positions already paid are ignored.
    pub fn pay(
        &self,
        peer: PeerId,
        model: Hash,
        layers: LayerRange,
        receipts: Vec<Receipt>,
    ) -> Result<(), String> {
        let first = receipts.first().ok_or("a payment with no receipt")?;
        if receipts.len() > MAX_PAY_RECEIPTS {
            return Err(format!(
                "more than {MAX_PAY_RECEIPTS} receipts in one payment"
            ));
        }
        let (session, client) = (first.body.session, first.body.client.clone());
        for r in &receipts {
            let b = &r.body;
            if b.worker != self.worker || b.model != model || model != self.model {
                return Err("a receipt of another worker's or model's work".into());
            }
            if b.layers != layers || b.session != session || b.client != client {
                return Err("receipts of one payment must be of one session and client".into());
            }
        }
        // Cheap before costly: the session must be this peer's, and only receipts for
        // positions not paid yet are worth a signature check (done outside the lock).
        let new: Vec<Receipt> = {
            let accounts = self.accounts.lock();
            let account = match accounts.get(&(session, layers)) {
                Some(a) if a.owner == peer => a,
                _ => return Err("no session of this peer to pay for".into()),
            };
            let mut last_seq = account.kept.last().map(|r| r.body.seq);
            receipts
                .into_iter()
                .filter(|r| {
                    let fresh = r.body.position_end > account.paid
                        && last_seq.is_none_or(|s| r.body.seq > s);
                    if fresh {
                        last_seq = Some(r.body.seq);
                    }
                    fresh
                })
                .collect()
        };
        let signed = new.iter().all(|r| {
            r.signed_messages()
                .iter()
                .all(|m| crypto::verify(m.signature, &m.message, m.signer))
        });
        if !signed {
            return Err("a receipt's signatures do not verify".into());
        }
        let mut accounts = self.accounts.lock();
        let held: Vec<&ReceiptBody> = accounts
            .values()
            .flat_map(|a| &a.kept)
            .chain(&new)
            .map(|r| &r.body)
            .filter(|b| b.client == client)
            .collect();
        match self.funds.covers(&client, &held) {
            Ok(true) => {}
            Ok(false) => return Err("the client's escrow does not cover these receipts".into()),
            Err(e) => return Err(format!("cannot read the client's escrow: {e:#}")),
        }
        let Some(account) = accounts.get_mut(&(session, layers)) else {
            return Err("no session of this peer to pay for".into());
        };
        for r in new {
            // Another payment of the same positions may have been taken meanwhile.
            let last_seq = account.kept.last().map(|k| k.body.seq);
            if r.body.position_end > account.paid && last_seq.is_none_or(|s| r.body.seq > s) {
                account.paid = r.body.position_end;
                account.kept.push(r);
            }
        }
        account.last_active = Instant::now();
        Ok(())
    }

    /// The counter-signed receipts of sessions quiet for at least `quiet`, taken out of
    /// the ledger (their debts stay until forgotten).
    pub fn take_quiet(&self, quiet: Duration) -> Vec<Receipt> {
        let now = Instant::now();
        let mut accounts = self.accounts.lock();
        forget_quiet(&mut accounts, now);
        accounts
            .values_mut()
            .filter(|a| now.duration_since(a.last_active) >= quiet)
            .flat_map(|a| std::mem::take(&mut a.kept))
            .collect()
    }
}

/// Forgets sessions quiet for longer than [`DEBT_MEMORY`] whose receipts were taken, and
/// the quietest ones beyond [`MAX_ACCOUNTS`].
fn forget_quiet(accounts: &mut HashMap<SessionKey, SessionAccount>, now: Instant) {
    accounts.retain(|_, a| !a.kept.is_empty() || now.duration_since(a.last_active) < DEBT_MEMORY);
    if accounts.len() >= MAX_ACCOUNTS {
        let mut by_age: Vec<(Instant, SessionKey)> =
            accounts.iter().map(|(k, a)| (a.last_active, *k)).collect();
        by_age.sort();
        for (_, key) in by_age.iter().take(accounts.len() + 1 - MAX_ACCOUNTS) {
            accounts.remove(key);
        }
    }
}

/// Submits, until `shutdown`, the receipts clients counter-signed for this worker and did
/// not put on chain themselves (see the module docs), signed with the worker's `key`.
pub async fn claim_unsubmitted(
    chain: Arc<Client>,
    key: Keypair,
    ledger: Arc<PaymentLedger>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    match chain.params() {
        Ok(params) => {
            if let Some(problem) = claim_horizon_problem(&params) {
                warn!("{problem}");
            }
        }
        Err(e) => warn!(error = %e, "cannot read the chain's parameters"),
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CLAIM_CHECK) => {}
            _ = shutdown.changed() => return,
        }
        let kept = ledger.take_quiet(UNCLAIMED_AFTER);
        if kept.is_empty() {
            continue;
        }
        let receipts = match unclaimed(&chain, kept) {
            Ok(r) if r.is_empty() => continue,
            Ok(r) => r,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot tell which kept receipts are on chain");
                continue;
            }
        };
        let count = receipts.len();
        let call = Call::Ponw(PonwCall::SubmitReceipts { receipts });
        match chain.sign_and_submit(&key, call) {
            Ok(hash) => info!(
                receipts = count,
                hash = %hex_hash(&hash),
                "submitted receipts a client counter-signed but did not submit"
            ),
            Err(e) => warn!(error = %format!("{e:#}"), "could not submit kept receipts"),
        }
    }
}

/// Those of `kept` whose client has not put them on chain or in the pool.
fn unclaimed(chain: &Client, kept: Vec<Receipt>) -> anyhow::Result<Vec<Receipt>> {
    let pooled: HashSet<Hash> = chain
        .pending()
        .iter()
        .filter_map(|xt| match &xt.call {
            Call::Ponw(PonwCall::SubmitReceipts { receipts }) => Some(receipts),
            _ => None,
        })
        .flatten()
        .map(Receipt::id)
        .collect();
    chain.with_best_state(|state, _| {
        let mut out = Vec::new();
        for r in kept {
            let b = &r.body;
            let key = (b.worker.clone(), b.session, b.layers);
            let on_chain = ponw::SESSIONS
                .get(state, &key)?
                .is_some_and(|s| s.last_seq >= b.seq);
            if !on_chain && !pooled.contains(&r.id()) {
                out.push(r);
            }
        }
        anyhow::Ok(out)
    })
}

#[cfg(test)]
mod tests;
