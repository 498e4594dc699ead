//! `neuroshard tx transfer|bond|unbond|worker-bond-more`: builds the call, signs it for the node's chain
//! (genesis hash from `chain_getBlockHash(0)`, nonce from `system_accountNextIndex`),
//! submits it with `author_submitExtrinsic` and follows new blocks until it is included.
//! The node dry-runs it first, so a call that would fail is refused before it costs
//! anything; one that fails in its block anyway (the state changed meanwhile) is still
//! included and pays its fee, and the block's `ExtrinsicFailed` event says why: that is
//! reported as an error.

use crate::cli::{StakeArgs, SubmitArgs, TransferArgs, TxCommand};
use anyhow::{bail, Context};
use neuroshard_client::hex_hash;
use neuroshard_primitives::{
    crypto, format_balance, parse_balance, AccountId, BalancesCall, Call, PonwCall,
    SignedExtrinsic, StakingCall,
};
use neuroshard_rpc::remote::NodeRpc;
use parity_scale_codec::Encode;
use sp_core::Pair as _;
use std::time::{Duration, Instant};

pub async fn run(cmd: TxCommand) -> anyhow::Result<()> {
    match cmd {
        TxCommand::Transfer(args) => transfer(args).await,
        TxCommand::Bond(args) => stake(args, true).await,
        TxCommand::Unbond(args) => stake(args, false).await,
        TxCommand::WorkerBondMore(args) => worker_bond_more(args).await,
    }
}

async fn worker_bond_more(args: StakeArgs) -> anyhow::Result<()> {
    let amount =
        parse_balance(&args.amount).with_context(|| format!("--amount {:?}", args.amount))?;
    let what = format!(
        "worker bond increase of {} NSHD ({amount} base units)",
        format_balance(amount)
    );
    let call = Call::Ponw(PonwCall::BondMore { amount });
    submit_and_wait(&args.submit, call, &what).await
}

async fn transfer(args: TransferArgs) -> anyhow::Result<()> {
    let to = crypto::parse_account(&args.to)?;
    let amount =
        parse_balance(&args.amount).with_context(|| format!("--amount {:?}", args.amount))?;
    let call = Call::Balances(BalancesCall::transfer_allow_death {
        dest: to.clone(),
        value: amount,
    });
    let what = format!(
        "transfer of {} NSHD ({amount} base units) to {}",
        format_balance(amount),
        crypto::ss58(&to)
    );
    submit_and_wait(&args.submit, call, &what).await
}

async fn stake(args: StakeArgs, bond: bool) -> anyhow::Result<()> {
    let amount =
        parse_balance(&args.amount).with_context(|| format!("--amount {:?}", args.amount))?;
    let (call, verb) = if bond {
        (Call::Staking(StakingCall::Bond { amount }), "bond")
    } else {
        (Call::Staking(StakingCall::Unbond { amount }), "unbond")
    };
    let what = format!(
        "{verb} of {} NSHD ({amount} base units)",
        format_balance(amount)
    );
    submit_and_wait(&args.submit, call, &what).await
}

/// Signs `call` for the node's chain (genesis hash from `chain_getBlockHash(0)`, nonce
/// from `system_accountNextIndex`), submits it and follows new blocks until it is in one.
async fn submit_and_wait(args: &SubmitArgs, call: Call, what: &str) -> anyhow::Result<()> {
    let pair = crypto::keypair_from_uri(&args.from)?;
    let timeout_secs = args.timeout_secs;
    let from: AccountId = pair.public().into();
    let rpc = NodeRpc::new(&args.rpc)?;
    let genesis = rpc.genesis_hash().await?;
    let nonce = rpc.next_index(&crypto::ss58(&from)).await?;
    let xt = SignedExtrinsic::sign(&pair, &genesis, nonce, call);
    let xt_hex = format!("0x{}", hex::encode(xt.encode()));
    let start_number = rpc.best_number().await?;
    let hash = rpc.submit(&xt_hex).await?;
    println!(
        "Submitted {what} from {} (nonce {nonce})",
        crypto::ss58(&from)
    );
    println!("  extrinsic: {hash}");

    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let mut next = start_number + 1;
    loop {
        while let Some(block) = rpc.block_at(next).await? {
            if block.block.extrinsics.contains(&xt_hex) {
                let failed = rpc.events(next).await?.into_iter().find(|e| {
                    e["event"] == "ExtrinsicFailed" && e["extrinsic"].as_str() == Some(&hash)
                });
                if let Some(e) = failed {
                    bail!(
                        "extrinsic {hash} was included in block #{next} but its call failed \
                         (the fee of {} base units was paid): {}",
                        e["fee"].as_str().unwrap_or("?"),
                        e["error"].as_str().unwrap_or("?")
                    );
                }
                let header = block.block.header.to_header()?;
                println!("Included in block #{next} {}", hex_hash(&header.hash()));
                println!("  parent:     {}", hex_hash(&header.parent_hash));
                println!("  state root: {}", hex_hash(&header.state_root));
                println!("  author:     {}", crypto::ss58(header.author()));
                println!("  extrinsics: {}", block.block.extrinsics.len());
                return Ok(());
            }
            next += 1;
        }
        if Instant::now() > deadline {
            bail!(
                "extrinsic {hash} not included after {timeout_secs} s (it may still be pending: see author_pendingExtrinsics)"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
