//! `neuroshard balance SS58`: an account's balances from `neuroshard_account`, in NSHD
//! and in base units.

use crate::cli::BalanceArgs;
use crate::rpc_client::NodeRpc;
use anyhow::Context;
use neuroshard_primitives::{crypto, format_balance, Balance};

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
