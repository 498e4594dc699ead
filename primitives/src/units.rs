//! Numeric aliases and the NSHD amount format: balances are `u128` base units with
//! 12 decimals, written by users as decimals ("1.5") and shown the same way.

use thiserror::Error;

/// Base units of NSHD.
pub type Balance = u128;
/// Block height.
pub type BlockNumber = u64;
/// Per-account transaction counter.
pub type Nonce = u64;

/// Decimals of the NSHD token.
pub const DECIMALS: u32 = 12;
/// The token's symbol, as wallets show it.
pub const TOKEN_SYMBOL: &str = "NSHD";
/// One NSHD in base units.
pub const UNIT: Balance = 1_000_000_000_000;

/// Why a decimal amount could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a decimal number like 1.5")]
    NotDecimal(String),
    #[error("amount {0:?} has more than 12 decimal places")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

/// Parses a user-written NSHD amount ("1.5", "10", "0.000000000001") into base units.
/// Exact: no floating point is involved.
pub fn parse_balance(text: &str) -> Result<Balance, AmountError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_only(whole) || !digits_only(frac) {
        return Err(AmountError::NotDecimal(text.to_string()));
    }
    if frac.len() > DECIMALS as usize {
        return Err(AmountError::TooPrecise(text.to_string()));
    }
    let too_large = || AmountError::TooLarge(text.to_string());
    let whole: Balance = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut frac_units: Balance = 0;
    for (i, b) in frac.bytes().enumerate() {
        frac_units += Balance::from(b - b'0') * 10u128.pow(DECIMALS - 1 - i as u32);
    }
    whole
        .checked_mul(UNIT)
        .and_then(|w| w.checked_add(frac_units))
        .ok_or_else(too_large)
}

/// Formats base units as a decimal NSHD amount without trailing zeros ("1.5").
pub fn format_balance(amount: Balance) -> String {
    let whole = amount / UNIT;
    let frac = amount % UNIT;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:012}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_examples() {
        assert_eq!(parse_balance("1.5"), Ok(1_500_000_000_000));
        assert_eq!(parse_balance("10"), Ok(10 * UNIT));
        assert_eq!(parse_balance(".25"), Ok(250_000_000_000));
        assert_eq!(parse_balance("0.000000000001"), Ok(1));
        assert!(matches!(
            parse_balance("1.0000000000001"),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_balance("-1"),
            Err(AmountError::NotDecimal(_))
        ));
        assert!(matches!(
            parse_balance("1e3"),
            Err(AmountError::NotDecimal(_))
        ));
        assert!(matches!(
            parse_balance("."),
            Err(AmountError::NotDecimal(_))
        ));
        assert!(matches!(parse_balance(""), Err(AmountError::Empty)));
        assert!(matches!(
            parse_balance("999999999999999999999999999999999"),
            Err(AmountError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(amount in 0u128..u128::MAX / 2) {
            prop_assert_eq!(parse_balance(&format_balance(amount)), Ok(amount));
        }
    }
}
