//! `System.Events` in Substrate's layout: the block's events as
//! `Vec<EventRecord { phase, event, topics }>`, where `event` is the runtime's event
//! enum, [`RuntimeEvent`]: one variant per pallet, at the pallet's index, holding that
//! pallet's event (`Balances.Transfer`, `Ponw.ReceiptAccepted`, ...). Which events a
//! pallet emits is the pallet's own declaration (`Pallet::EVENTS`), and the metadata
//! describes each pallet's events with the same declaration
//! (`neuroshard_support::PalletEvents`), so `api.query.system.events` decodes them.
//!
//! Inside the node events stay [`Event`] values; [`RuntimeEvent`] is their wire form:
//! `Event::X` with its fields becomes `[pallet index, index of X within the pallet]`
//! followed by the same field bytes.

use neuroshard_balances::Balances;
use neuroshard_ponw::Ponw;
use neuroshard_primitives::{Event, Hash};
use neuroshard_staking::Staking;
use neuroshard_support::{Pallet, PalletEvents};
use neuroshard_training_pallet::Training;
use parity_scale_codec::{Decode, Encode, Error, Input, Output};
use scale_info::build::{Fields, Variants};
use scale_info::{meta_type, Path, Type, TypeInfo, TypeParameter};
use std::sync::OnceLock;

/// The System pallet as an event owner (`ExtrinsicSuccess`, `ExtrinsicFailed`).
pub struct System;

impl Pallet for System {
    const NAME: &'static str = crate::system::NAME;
    const INDEX: u8 = crate::system::INDEX;
    const EVENTS: &'static [&'static str] = &["ExtrinsicSuccess", "ExtrinsicFailed"];
}

/// When in the block an event happened (Substrate's `Phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum Phase {
    /// While applying the extrinsic at this index of the block.
    #[codec(index = 0)]
    ApplyExtrinsic(u32),
    /// After the last extrinsic.
    #[codec(index = 1)]
    Finalization,
    /// Before the first extrinsic (epoch payouts, liveness challenges).
    #[codec(index = 2)]
    Initialization,
}

/// One entry of `System.Events`. Described in the metadata as Substrate's
/// `frame_system::EventRecord<E, T>` with `E` the runtime event enum and `T` the hash,
/// which is how polkadot.js finds the runtime's event type.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EventRecord {
    pub phase: Phase,
    pub event: RuntimeEvent,
    /// Always empty (NeuroShard indexes no topics).
    pub topics: Vec<Hash>,
}

impl TypeInfo for EventRecord {
    type Identity = Self;

    fn type_info() -> Type {
        Type::builder()
            .path(Path::new("EventRecord", "frame_system"))
            .type_params(vec![
                TypeParameter::new("E", Some(meta_type::<RuntimeEvent>())),
                TypeParameter::new("T", Some(meta_type::<Hash>())),
            ])
            .composite(
                Fields::named()
                    .field(|f| f.ty::<Phase>().name("phase").type_name("Phase"))
                    .field(|f| f.ty::<RuntimeEvent>().name("event").type_name("E"))
                    .field(|f| f.ty::<Vec<Hash>>().name("topics").type_name("Vec<T>")),
            )
    }
}

/// An event as the runtime's event enum encodes it (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent(pub Event);

/// `(pallet index, index within the pallet)` of every `Event` variant, by the
/// variant's codec index; `None` for a variant no pallet declares.
fn table() -> &'static [Option<(u8, u8)>] {
    static TABLE: OnceLock<Vec<Option<(u8, u8)>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let scale_info::TypeDef::Variant(all) = Event::type_info().type_def else {
            return Vec::new();
        };
        let mut table = vec![None; 256];
        for variant in all.variants {
            let name = variant.name;
            table[usize::from(variant.index)] = [
                (System::INDEX, PalletEvents::<System>::local_index(name)),
                (Balances::INDEX, PalletEvents::<Balances>::local_index(name)),
                (Ponw::INDEX, PalletEvents::<Ponw>::local_index(name)),
                (Staking::INDEX, PalletEvents::<Staking>::local_index(name)),
                (Training::INDEX, PalletEvents::<Training>::local_index(name)),
            ]
            .into_iter()
            .find_map(|(pallet, local)| Some((pallet, local?)));
        }
        table
    })
}

impl Encode for RuntimeEvent {
    fn size_hint(&self) -> usize {
        self.0.size_hint() + 1
    }

    fn encode_to<T: Output + ?Sized>(&self, dest: &mut T) {
        let bytes = self.0.encode();
        let Some((&variant, fields)) = bytes.split_first() else {
            return;
        };
        // Every variant has an owner (checked by a test over `Event`'s variants).
        let (pallet, local) = table()[usize::from(variant)].unwrap_or((u8::MAX, variant));
        dest.push_byte(pallet);
        dest.push_byte(local);
        dest.write(fields);
    }
}

/// The event's codec index byte, then the rest of the input.
struct Prefixed<'a, I> {
    first: Option<u8>,
    rest: &'a mut I,
}

impl<I: Input> Input for Prefixed<'_, I> {
    fn remaining_len(&mut self) -> Result<Option<usize>, Error> {
        let rest = self.rest.remaining_len()?;
        Ok(rest.map(|r| r + usize::from(self.first.is_some())))
    }

    fn read(&mut self, into: &mut [u8]) -> Result<(), Error> {
        let Some((head, tail)) = into.split_first_mut() else {
            return Ok(());
        };
        match self.first.take() {
            Some(first) => {
                *head = first;
                self.rest.read(tail)
            }
            None => self.rest.read(into),
        }
    }
}

impl Decode for RuntimeEvent {
    fn decode<I: Input>(input: &mut I) -> Result<Self, Error> {
        let pallet = input.read_byte()?;
        let local = input.read_byte()?;
        let variant = table()
            .iter()
            .position(|owner| *owner == Some((pallet, local)))
            .ok_or("no pallet declares this event")?;
        let first = u8::try_from(variant).map_err(|_| "event index out of range")?;
        let mut prefixed = Prefixed {
            first: Some(first),
            rest: input,
        };
        Ok(Self(Event::decode(&mut prefixed)?))
    }
}

/// Described as Substrate's `RuntimeEvent`: a variant per pallet with events, named and
/// indexed as the pallet, holding the pallet's event enum.
impl TypeInfo for RuntimeEvent {
    type Identity = Self;

    fn type_info() -> Type {
        fn pallet<P: Pallet + 'static>(variants: Variants) -> Variants {
            variants.variant(P::NAME, |v| {
                v.index(P::INDEX)
                    .fields(Fields::unnamed().field(|f| f.ty::<PalletEvents<P>>()))
            })
        }
        let variants = pallet::<Balances>(Variants::new());
        let variants = pallet::<Ponw>(variants);
        let variants = pallet::<Staking>(variants);
        let variants = pallet::<Training>(variants);
        let variants = pallet::<System>(variants);
        Type::builder()
            .path(Path::new("RuntimeEvent", "neuroshard_runtime"))
            .variant(variants)
    }
}

/// The block's events as `System.Events` records: `marks` are the event counts after
/// initialization and after each applied extrinsic, in block order.
pub fn records(events: &[Event], initialized: usize, applied: &[usize]) -> Vec<EventRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let phase = if i < initialized {
                Phase::Initialization
            } else {
                match applied.iter().position(|end| i < *end) {
                    Some(x) => Phase::ApplyExtrinsic(u32::try_from(x).unwrap_or(u32::MAX)),
                    None => Phase::Finalization,
                }
            };
            EventRecord {
                phase,
                event: RuntimeEvent(event.clone()),
                topics: Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{account, Chain};
    use neuroshard_primitives::{BalancesCall, Call, UNIT};
    use parity_scale_codec::DecodeAll;

    #[test]
    fn every_event_has_exactly_one_pallet() {
        let scale_info::TypeDef::Variant(all) = Event::type_info().type_def else {
            panic!("Event is an enum");
        };
        for variant in all.variants {
            let owners = [
                System::EVENTS,
                Balances::EVENTS,
                Ponw::EVENTS,
                Staking::EVENTS,
                Training::EVENTS,
            ]
            .iter()
            .filter(|events| events.contains(&variant.name))
            .count();
            assert_eq!(
                owners, 1,
                "{} is declared by {owners} pallets",
                variant.name
            );
            assert!(table()[usize::from(variant.index)].is_some());
        }
    }

    #[test]
    fn events_encode_under_their_pallet_and_round_trip() {
        let transfer = Event::Transfer {
            from: account("//Alice"),
            to: account("//Bob"),
            amount: 3 * UNIT,
        };
        let bytes = RuntimeEvent(transfer.clone()).encode();
        // Balances (index 0), its first event, then Event::Transfer's fields.
        assert_eq!(&bytes[..2], &[Balances::INDEX, 0]);
        assert_eq!(&bytes[2..], &transfer.encode()[1..]);
        let record = EventRecord {
            phase: Phase::ApplyExtrinsic(1),
            event: RuntimeEvent(transfer),
            topics: vec![],
        };
        let encoded = record.encode();
        // Phase::ApplyExtrinsic (0) with u32 1, then the event.
        assert_eq!(&encoded[..5], &[0, 1, 0, 0, 0]);
        assert_eq!(EventRecord::decode_all(&mut &encoded[..]).unwrap(), record);
        // Unknown pallets or events, and truncated input, are refused.
        assert!(RuntimeEvent::decode(&mut &[200u8, 0][..]).is_err());
        assert!(RuntimeEvent::decode(&mut &[Balances::INDEX, 99][..]).is_err());
        assert!(RuntimeEvent::decode(&mut &bytes[..bytes.len() - 1]).is_err());
        assert!(RuntimeEvent::decode(&mut &[][..]).is_err());
    }

    #[test]
    fn system_events_hold_the_block_events_with_their_phases() {
        let mut chain = Chain::new();
        let transfer = chain.sign(
            "//Alice",
            0,
            Call::Balances(BalancesCall::transfer_allow_death {
                dest: account("//Charlie"),
                value: 5 * UNIT,
            }),
        );
        let (_, events, _) = chain.produce(vec![transfer]);
        let stored = crate::system::EVENTS.get(&chain.state).unwrap().unwrap();
        assert_eq!(stored.len(), events.len());
        let transfer = stored
            .iter()
            .find(|r| matches!(r.event.0, Event::Transfer { .. }))
            .expect("a Transfer record");
        assert_eq!(transfer.phase, Phase::ApplyExtrinsic(0));
        assert_eq!(
            transfer.event.0,
            Event::Transfer {
                from: account("//Alice"),
                to: account("//Charlie"),
                amount: 5 * UNIT
            }
        );
        // The extrinsic's status comes last in its phase, as in Substrate.
        let last = stored
            .iter()
            .rfind(|r| r.phase == Phase::ApplyExtrinsic(0))
            .expect("the extrinsic's events");
        assert!(
            matches!(&last.event.0, Event::ExtrinsicSuccess { who, fee, .. }
                if *who == account("//Alice") && *fee > 0),
            "{last:?}"
        );
        // The next block's events replace them.
        let (_, events, _) = chain.produce(vec![]);
        let stored = crate::system::EVENTS.get(&chain.state).unwrap();
        assert_eq!(stored.unwrap_or_default().len(), events.len());
    }
}
