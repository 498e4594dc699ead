//! Block events as JSON for explorers (`neuroshard_events`): one object per event with a
//! stable `event` name and its fields; accounts as SS58 addresses, hashes as 0x hex,
//! balances as decimal strings of base units (u128 does not fit a JSON number), layer
//! ranges as "start-end".

use neuroshard_client::hex_hash;
use neuroshard_primitives::{crypto, fixed_to_loss, Event, EvidenceSummary, SlashReason};
use serde_json::{json, Value};

/// The JSON form of one event.
pub fn event_json(event: &Event) -> Value {
    let ss58 = crypto::ss58;
    match event {
        Event::Transfer { from, to, amount } => {
            json!({"event": "Transfer", "from": ss58(from), "to": ss58(to), "amount": amount.to_string()})
        }
        Event::DustLost { account, amount } => {
            json!({"event": "DustLost", "account": ss58(account), "amount": amount.to_string()})
        }
        Event::FeeBurned { who, amount } => {
            json!({"event": "FeeBurned", "who": ss58(who), "amount": amount.to_string()})
        }
        Event::ExtrinsicSuccess {
            extrinsic,
            who,
            fee,
            ..
        } => json!({
            "event": "ExtrinsicSuccess", "extrinsic": hex_hash(extrinsic), "who": ss58(who),
            "fee": fee.to_string(),
        }),
        Event::ExtrinsicFailed {
            dispatch_error,
            extrinsic,
            who,
            fee,
            error,
            ..
        } => json!({
            "event": "ExtrinsicFailed", "extrinsic": hex_hash(extrinsic), "who": ss58(who),
            "fee": fee.to_string(), "error": error, "dispatchError": format!("{dispatch_error:?}"),
        }),
        Event::WorkerRegistered {
            worker,
            model,
            shards,
        } => json!({
            "event": "WorkerRegistered", "worker": ss58(worker), "model": hex_hash(model),
            "shards": shards.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        }),
        Event::WorkerBondIncreased {
            worker,
            amount,
            bond,
        } => json!({
            "event": "WorkerBondIncreased", "worker": ss58(worker),
            "amount": amount.to_string(), "bond": bond.to_string(),
        }),
        Event::WorkerDeregistered { worker } => {
            json!({"event": "WorkerDeregistered", "worker": ss58(worker)})
        }
        Event::ReceiptAccepted {
            id,
            worker,
            client,
            epoch,
            tokens,
            layers,
            fee,
            burned,
        } => json!({
            "event": "ReceiptAccepted", "id": hex_hash(id), "worker": ss58(worker),
            "client": ss58(client), "epoch": epoch, "tokens": tokens, "layers": layers.to_string(),
            "fee": fee.to_string(), "burned": burned.to_string(),
        }),
        Event::EscrowDeposited { client, amount } => {
            json!({"event": "EscrowDeposited", "client": ss58(client), "amount": amount.to_string()})
        }
        Event::EscrowReleaseRequested { client, release_at } => json!({
            "event": "EscrowReleaseRequested", "client": ss58(client), "releaseAt": release_at,
        }),
        Event::EscrowWithdrawn { client, amount } => {
            json!({"event": "EscrowWithdrawn", "client": ss58(client), "amount": amount.to_string()})
        }
        Event::UptimeCredited {
            worker,
            epoch,
            minute,
            credit_permill,
        } => json!({
            "event": "UptimeCredited", "worker": ss58(worker), "epoch": epoch, "minute": minute,
            "creditPermill": credit_permill,
        }),
        Event::RewardPaid {
            account,
            epoch,
            tokens,
            layer_tokens,
            uptime_minutes,
            uptime_credit,
            training,
            reward,
        } => json!({
            "event": "RewardPaid", "account": ss58(account), "epoch": epoch, "tokens": tokens,
            "layerTokens": layer_tokens, "uptimeMinutes": uptime_minutes,
            "uptimeCredit": uptime_credit,
            "training": training.to_string(), "reward": reward.to_string(),
        }),
        Event::Bonded { who, amount } => {
            json!({"event": "Bonded", "who": ss58(who), "amount": amount.to_string()})
        }
        Event::Unbonded {
            who,
            amount,
            unlock_at,
        } => json!({
            "event": "Unbonded", "who": ss58(who), "amount": amount.to_string(), "unlockAt": unlock_at,
        }),
        Event::Withdrawn { who, amount } => {
            json!({"event": "Withdrawn", "who": ss58(who), "amount": amount.to_string()})
        }
        Event::Slashed {
            who,
            amount,
            reason,
        } => {
            let mut v = json!({
                "event": "Slashed", "who": ss58(who), "amount": amount.to_string(),
                "reason": reason.as_str(),
            });
            match reason {
                SlashReason::Equivocation { slot } => v["slot"] = json!(slot),
                SlashReason::FailedSpotCheck { receipt }
                | SlashReason::WrongVerdict { receipt }
                | SlashReason::RefutedVerdict { receipt } => {
                    v["receipt"] = json!(hex_hash(receipt))
                }
                SlashReason::ContradictedTraining { layers, round } => {
                    v["layers"] = json!(layers.to_string());
                    v["round"] = json!(round);
                }
                SlashReason::FalseCapacityClaim { minute } => v["minute"] = json!(minute),
            }
            v
        }
        Event::GradientReceiptSubmitted {
            worker,
            model,
            layers,
            round,
            pseudo_gradient,
        } => json!({
            "event": "GradientReceiptSubmitted", "worker": ss58(worker), "model": hex_hash(model),
            "layers": layers.to_string(), "round": round, "pseudoGradient": hex_hash(pseudo_gradient),
        }),
        Event::RoundResultReported {
            worker,
            layers,
            round,
            result,
        } => json!({
            "event": "RoundResultReported", "worker": ss58(worker), "layers": layers.to_string(),
            "round": round, "result": hex_hash(result),
        }),
        Event::TrainingRoundFinalized {
            model,
            layers,
            round,
            adapter,
            accepted,
            rejected,
        } => json!({
            "event": "TrainingRoundFinalized", "model": hex_hash(model), "layers": layers.to_string(),
            "round": round, "adapter": hex_hash(adapter), "accepted": accepted, "rejected": rejected,
        }),
        Event::TrainingVerificationRequested {
            layers,
            round,
            verifier,
        } => json!({
            "event": "TrainingVerificationRequested", "layers": layers.to_string(), "round": round,
            "verifier": ss58(verifier),
        }),
        Event::TrainingContributionVerified {
            worker,
            layers,
            round,
            outcome,
        } => json!({
            "event": "TrainingContributionVerified", "worker": ss58(worker),
            "layers": layers.to_string(), "round": round, "outcome": outcome.as_str(),
        }),
        Event::TrainingAdapterVerified {
            layers,
            round,
            adapter,
            outcome,
            held_out_before,
            held_out_after,
        } => json!({
            "event": "TrainingAdapterVerified", "layers": layers.to_string(), "round": round,
            "adapter": hex_hash(adapter), "outcome": outcome.as_str(),
            "heldOutBefore": fixed_to_loss(*held_out_before), "heldOutAfter": fixed_to_loss(*held_out_after),
        }),
        Event::TrainingRewardPaid {
            account,
            layers,
            round,
            amount,
        } => json!({
            "event": "TrainingRewardPaid", "account": ss58(account), "layers": layers.to_string(),
            "round": round, "amount": amount.to_string(),
        }),
        Event::TrainingRoundRestarted {
            layers,
            round,
            dropped,
            worker,
        } => json!({
            "event": "TrainingRoundRestarted", "layers": layers.to_string(), "round": round,
            "dropped": dropped, "worker": ss58(worker),
        }),
        Event::ReceiptRejected {
            id,
            worker,
            client,
            reason,
        } => json!({
            "event": "ReceiptRejected", "id": hex_hash(id), "worker": ss58(worker),
            "client": ss58(client), "reason": reason.as_str(),
        }),
        Event::ChallengeMissed {
            worker,
            minute,
            heartbeat,
            probed,
        } => json!({
            "event": "ChallengeMissed", "worker": ss58(worker), "minute": minute,
            "heartbeat": heartbeat, "probed": probed,
        }),
        Event::LivenessProbed {
            worker,
            minute,
            prober,
            answered,
            throughput,
        } => json!({
            "event": "LivenessProbed", "worker": ss58(worker), "minute": minute,
            "prober": ss58(prober), "answered": answered, "throughput": throughput,
        }),
        Event::SpotCheckRequested {
            id,
            worker,
            layers,
            checker,
            deadline,
        } => json!({
            "event": "SpotCheckRequested", "id": hex_hash(id), "worker": ss58(worker),
            "layers": layers.to_string(), "checker": ss58(checker), "deadline": deadline,
        }),
        Event::SpotCheckReassigned {
            id,
            checker,
            deadline,
            verdict,
        } => json!({
            "event": "SpotCheckReassigned", "id": hex_hash(id), "checker": ss58(checker),
            "deadline": deadline, "verdict": verdict.map(|v| v.as_str()),
        }),
        Event::SpotCheckPassed {
            id,
            worker,
            checker,
        } => json!({
            "event": "SpotCheckPassed", "id": hex_hash(id), "worker": ss58(worker),
            "checker": ss58(checker),
        }),
        Event::SpotCheckFailed {
            id,
            worker,
            checker,
            verdict,
            slashed,
            refunded,
            evidence,
        } => json!({
            "event": "SpotCheckFailed", "id": hex_hash(id), "worker": ss58(worker),
            "checker": ss58(checker), "verdict": verdict.as_str(),
            "slashed": slashed.to_string(), "refunded": refunded.to_string(),
            "evidence": evidence_json(evidence),
        }),
        Event::SpotCheckVerdictRefuted {
            id,
            checker,
            verdict,
            distance_ppm,
        } => json!({
            "event": "SpotCheckVerdictRefuted", "id": hex_hash(id), "checker": ss58(checker),
            "verdict": verdict.as_str(), "distancePpm": distance_ppm,
        }),
        Event::EarningsSettled {
            worker,
            receipts,
            earned,
            tokens,
        } => json!({
            "event": "EarningsSettled", "worker": ss58(worker), "receipts": receipts,
            "earned": earned.to_string(), "tokens": tokens,
        }),
        Event::ForfeitOwed {
            worker,
            amount,
            owed,
        } => json!({
            "event": "ForfeitOwed", "worker": ss58(worker), "amount": amount.to_string(),
            "owed": owed.to_string(),
        }),
        Event::ForfeitPaid {
            worker,
            receipts,
            amount,
            owed,
            from_bond,
        } => json!({
            "event": "ForfeitPaid", "worker": ss58(worker), "receipts": receipts,
            "amount": amount.to_string(), "owed": owed.to_string(), "fromBond": from_bond,
        }),
    }
}

/// What a decided check rested on, for explorers: the worker's own statement (its
/// receipt, input digest and commitment hash) or the recomputed commitments' hashes and
/// the first one's distance from the worker's (millionths); `null` for none.
fn evidence_json(evidence: &EvidenceSummary) -> Value {
    match evidence {
        EvidenceSummary::None => Value::Null,
        EvidenceSummary::Statement(s) => json!({
            "kind": "statement", "receipt": hex_hash(&s.receipt),
            "inputs": hex_hash(&s.inputs), "commitment": hex_hash(&s.commitment),
        }),
        EvidenceSummary::Recomputed {
            recomputed,
            distance_ppm,
        } => json!({
            "kind": "recomputed",
            "recomputed": recomputed.iter().map(hex_hash).collect::<Vec<_>>(),
            "distancePpm": distance_ppm,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_primitives::{AccountId, LayerRange};

    #[test]
    fn events_have_stable_names_and_exact_amounts() {
        let who = AccountId::from([1; 32]);
        let v = event_json(&Event::Slashed {
            who: who.clone(),
            amount: u128::MAX,
            reason: SlashReason::Equivocation { slot: 7 },
        });
        assert_eq!(v["event"], "Slashed");
        assert_eq!(v["amount"], u128::MAX.to_string());
        assert_eq!(v["reason"], "equivocation");
        assert_eq!(v["slot"], 7);
        assert_eq!(v["who"], crypto::ss58(&who));
        let v = event_json(&Event::TrainingRewardPaid {
            account: who,
            layers: LayerRange { start: 0, end: 10 },
            round: 3,
            amount: 5,
        });
        assert_eq!(v["layers"], "0-10");
        assert_eq!(v["amount"], "5");
        let v = event_json(&Event::ReceiptRejected {
            id: neuroshard_primitives::Hash::zero(),
            worker: AccountId::from([2; 32]),
            client: AccountId::from([3; 32]),
            reason: neuroshard_primitives::RejectReason::Replay,
        });
        assert_eq!(v["event"], "ReceiptRejected");
        assert_eq!(v["reason"], "replay");
    }

    #[test]
    fn spot_check_slashes_show_their_reason_and_evidence() {
        use neuroshard_primitives::{EvidenceSummary, Hash, MaterialStatement, SpotCheckVerdict};
        let id = Hash::repeat_byte(1);
        let failed = |evidence| {
            event_json(&Event::SpotCheckFailed {
                id,
                worker: AccountId::from([2; 32]),
                checker: AccountId::from([3; 32]),
                verdict: SpotCheckVerdict::Mismatch,
                slashed: 50,
                refunded: 7,
                evidence,
            })
        };
        let v = failed(EvidenceSummary::Recomputed {
            recomputed: vec![Hash::repeat_byte(4), Hash::repeat_byte(5)],
            distance_ppm: 500_000,
        });
        assert_eq!(v["evidence"]["kind"], "recomputed");
        assert_eq!(
            v["evidence"]["recomputed"][1],
            hex_hash(&Hash::repeat_byte(5))
        );
        assert_eq!(v["evidence"]["distancePpm"], 500_000);
        let statement = MaterialStatement::of(id, Hash::repeat_byte(6), b"c");
        let v = failed(EvidenceSummary::Statement(statement.clone()));
        assert_eq!(v["evidence"]["kind"], "statement");
        assert_eq!(v["evidence"]["inputs"], hex_hash(&statement.inputs));
        assert_eq!(failed(EvidenceSummary::None)["evidence"], Value::Null);
        let v = event_json(&Event::Slashed {
            who: AccountId::from([3; 32]),
            amount: 5,
            reason: SlashReason::RefutedVerdict { receipt: id },
        });
        assert_eq!(v["reason"], "refuted_verdict");
        assert_eq!(v["receipt"], hex_hash(&id));
        let v = event_json(&Event::Slashed {
            who: AccountId::from([3; 32]),
            amount: 5,
            reason: SlashReason::FalseCapacityClaim { minute: 42 },
        });
        assert_eq!(v["reason"], "false_capacity_claim");
        assert_eq!(v["minute"], 42);
        let v = event_json(&Event::SpotCheckVerdictRefuted {
            id,
            checker: AccountId::from([3; 32]),
            verdict: SpotCheckVerdict::Mismatch,
            distance_ppm: 9_900,
        });
        assert_eq!(v["verdict"], "mismatch");
        assert_eq!(v["distancePpm"], 9_900);
    }
}
