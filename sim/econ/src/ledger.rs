//! Each account's money flows as the runtime's events report them: rewards minted,
//! fees earned at settlement, slashes, transaction fees, escrow deposits and
//! withdrawals. The report checks that they add up to the change of the account's
//! balance the runtime holds, so the table is the runtime's accounting, not ours.

use neuroshard_primitives::{AccountId, Balance, Event};
use std::collections::HashMap;

/// One account's flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flows {
    pub rewards: Balance,
    pub fees_earned: Balance,
    pub slashed: Balance,
    pub tx_fees: Balance,
    pub deposited: Balance,
    pub withdrawn: Balance,
}

/// Flows per account.
#[derive(Default)]
pub struct Ledger {
    pub flows: HashMap<AccountId, Flows>,
}

impl Ledger {
    /// Records a block's events.
    pub fn record(&mut self, events: &[Event]) {
        for e in events {
            match e {
                Event::RewardPaid {
                    account, reward, ..
                } => self.at(account).rewards += reward,
                Event::TrainingRewardPaid {
                    account, amount, ..
                } => self.at(account).rewards += amount,
                Event::EarningsSettled { worker, earned, .. } => {
                    self.at(worker).fees_earned += earned
                }
                Event::Slashed { who, amount, .. } => self.at(who).slashed += amount,
                // What a worker owed of hidden checks, taken from its bond at exit.
                Event::ForfeitPaid {
                    worker,
                    amount,
                    from_bond: true,
                    ..
                } => self.at(worker).slashed += amount,
                Event::ExtrinsicSuccess { who, fee, .. }
                | Event::ExtrinsicFailed { who, fee, .. } => self.at(who).tx_fees += fee,
                Event::EscrowDeposited { client, amount } => self.at(client).deposited += amount,
                Event::EscrowWithdrawn { client, amount } => self.at(client).withdrawn += amount,
                _ => {}
            }
        }
    }

    fn at(&mut self, who: &AccountId) -> &mut Flows {
        self.flows.entry(who.clone()).or_default()
    }

    /// The flows of `who` (zero when it had none).
    pub fn of(&self, who: &AccountId) -> Flows {
        self.flows.get(who).copied().unwrap_or_default()
    }
}
