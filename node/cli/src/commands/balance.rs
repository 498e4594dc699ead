//! `neuroshard balance SS58`: an account's balances from `neuroshard_account`, in NSHD
//! and in base units.

use crate::cli::BalanceArgs;
use anyhow::Context;
use neuroshard_primitives::{crypto, format_balance, Balance};
use neuroshard_rpc::remote::NodeRpc;

pub async fn run(args: BalanceArgs) -> anyhow::Result<()> {
    let account = crypto::parse_account(&args.address)?;
    let address = crypto::ss58(&account);
    let rpc = NodeRpc::new(&args.rpc)?;
    let info = rpc.account(&address).await?;
    let amount = |label: &str, text: &str| -> anyhow::Result<String> {
        let units: Balance = text
            .parse()
            .with_context(|| format!("node sent a bad {label} balance {text:?}"))?;
        Ok(format!(
            "  {label:<9} {} NSHD ({units} base units)",
            format_balance(units)
        ))
    };
    println!("Account {address}");
    println!("{}", amount("free:", &info.free)?);
    println!("{}", amount("reserved:", &info.reserved)?);
    println!("{}", amount("bonded:", &info.bonded)?);
    println!("  nonce:    {}", info.nonce);
    Ok(())
}

/// `neuroshard verify-balance SS58`: the same figures, proven against the finalized
/// header's state root instead of taken from the node's word.
pub async fn verify(args: BalanceArgs) -> anyhow::Result<()> {
    let account = crypto::parse_account(&args.address)?;
    let rpc = NodeRpc::new(&args.rpc)?;
    let at = rpc.finalized_head().await?;
    let header = neuroshard_rpc::light::header_from_json(&rpc.header(&at).await?, &at)?;
    let key = neuroshard_runtime::storage_keys::account(&account);
    let proof = rpc.read_proof(&[key], &at).await?;
    let data = neuroshard_rpc::light::verify_account(&header, &account, &proof)?;
    println!(
        "Account {} at finalized block #{} {}",
        crypto::ss58(&account),
        header.number,
        neuroshard_client::hex_hash(&at)
    );
    println!(
        "  state root: {} (proof verified)",
        neuroshard_client::hex_hash(&header.state_root)
    );
    for (label, units) in [
        ("free:", data.free),
        ("reserved:", data.reserved),
        ("bonded:", data.bonded),
    ] {
        println!(
            "  {label:<9} {} NSHD ({units} base units)",
            format_balance(units)
        );
    }
    println!("  nonce:    {}", data.nonce);
    Ok(())
}
