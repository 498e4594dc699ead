//! Work and its checks: the receipts agents sign (honest, cheated, self-dealt), the
//! commitments they commit to, and the verdicts validators return on the sampled ones,
//! with the evidence the runtime checks. The inference itself is not run: a receipt's
//! commitment is a stand-in, and whether a checker's re-run of a cheated receipt fails
//! is drawn once per receipt at the measured detection rate of its cheat mode (every
//! honest checker re-runs the same material, so they agree); everything after that (the
//! quorum, slashes, forfeits, refunds) is the runtime's.

use neuroshard_primitives::commitment::{ActivationCommitment, PositionTopK};
use neuroshard_primitives::{
    blake2_256, AccountId, Hash, Keypair, LayerRange, MaterialStatement, Receipt, ReceiptBody,
    Recomputation, SpotCheckEvidence, SpotCheckVerdict,
};

/// What the simulation remembers of a receipt it had signed.
#[derive(Clone, Copy, Debug)]
pub struct Note {
    /// The agent whose worker signed it.
    pub agent: usize,
    /// The work was faked (by a cheat mode).
    pub cheated: bool,
    /// A checker's re-run of it fails (drawn at the mode's measured detection rate).
    pub detectable: bool,
}

/// The commitment a receipt of `session` commits to over `tokens` positions: a
/// stand-in (the runtime only decodes, hashes and compares commitments), varied by
/// session and position, with the four largest values of a position in four of its
/// dimensions.
pub fn committed(session: u64, tokens: u32) -> ActivationCommitment {
    let per: Vec<PositionTopK> = (0..tokens)
        .map(|p| {
            let wobble = ((u64::from(p) * 13 + session) % 11) as f32;
            let top = (0..4u16)
                .map(|d| {
                    (
                        d * 97 + (p % 5) as u16,
                        (4 - d) as f32 * (1.0 + wobble / 20.0),
                    )
                })
                .collect();
            PositionTopK {
                norm: 8.0 + wobble,
                top,
            }
        })
        .collect();
    ActivationCommitment::from_positions(0, &per)
}

/// What an honest checker recomputes from a cheater's material when its re-run fails:
/// every position's norm doubled (far beyond the tolerance; two checkers agree on it).
fn recomputed_from_cheat(c: &ActivationCommitment) -> ActivationCommitment {
    let mut c = c.clone();
    for p in &mut c.positions {
        p.norm *= 2.0;
    }
    c
}

/// A session id from a counter.
pub fn session_id(session: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&session.to_le_bytes());
    id[8..].copy_from_slice(b"econ/sim");
    id
}

/// The counter a session id came from.
pub fn session_counter(id: &[u8; 16]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&id[..8]);
    u64::from_le_bytes(word)
}

/// What one receipt is for.
pub struct Order<'a> {
    pub worker: &'a Keypair,
    pub client: &'a Keypair,
    pub model: Hash,
    pub layers: LayerRange,
    pub session: u64,
    pub epoch: u32,
    pub tokens: u32,
}

/// The receipt of `order`, signed by its worker and counter-signed by its client.
pub fn receipt(order: &Order<'_>) -> Receipt {
    use sp_core::Pair as _;
    let body = ReceiptBody {
        worker: order.worker.public().into(),
        client: order.client.public().into(),
        model: order.model,
        layers: order.layers,
        session: session_id(order.session),
        epoch: order.epoch,
        seq: 0,
        position_start: 0,
        position_end: order.tokens,
        commitment: committed(order.session, order.tokens).hash(),
        input_commitment: blake2_256(&order.session.to_le_bytes()),
        adapter: None,
    };
    Receipt::sign(body, order.worker, order.client)
}

/// How a sampled receipt's worker behaves towards the checker drawn for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stance {
    /// Hands over its material (honest or not).
    Answer,
    /// Hands over nothing.
    Hide,
    /// The checker is the worker's accomplice: it passes the receipt.
    Accomplice,
}

/// The verdict an honest checker (or an accomplice) returns on `body` (receipt `id`),
/// with its evidence; `worker` signs the statement of the material it handed over.
pub fn verdict(
    id: Hash,
    body: &ReceiptBody,
    note: Option<&Note>,
    stance: Stance,
    worker: &Keypair,
) -> (SpotCheckVerdict, SpotCheckEvidence) {
    let cheated = note.is_some_and(|n| n.cheated);
    match stance {
        Stance::Accomplice => return (SpotCheckVerdict::Match, SpotCheckEvidence::None),
        Stance::Hide if cheated => {
            return (SpotCheckVerdict::NoAnswer, SpotCheckEvidence::None);
        }
        _ => {}
    }
    if !note.is_some_and(|n| n.cheated && n.detectable) {
        return (SpotCheckVerdict::Match, SpotCheckEvidence::None);
    }
    let claimed = committed(session_counter(&body.session), body.tokens());
    let claimed_bytes = claimed.encode();
    let statement = MaterialStatement::of(id, body.input_commitment, &claimed_bytes).sign(worker);
    let evidence = SpotCheckEvidence::Recomputed(Recomputation {
        statement,
        claimed: claimed_bytes,
        recomputed: recomputed_from_cheat(&claimed).encode(),
    });
    (SpotCheckVerdict::Mismatch, evidence)
}

/// True when `who` is one of `keys`' accounts.
pub fn is_one_of(who: &AccountId, keys: &[crate::chain::Key]) -> bool {
    keys.iter().any(|k| k.account == *who)
}
