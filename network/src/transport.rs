//! The transports the network service runs on. A node talks TCP (authenticated and
//! encrypted with noise, multiplexed with yamux) and QUIC beside it (with a short idle
//! timeout and keep-alive pings, so that a peer that died without a word is noticed in
//! seconds), and reaches peers behind NAT through circuit relay v2 (the relay client
//! transport, over either). Simulations and tests can instead run many services in one
//! process over libp2p's in-memory transport (`/memory/N` addresses), multiplexed with
//! yamux as on TCP and authenticated either with noise or with plaintext's bare key
//! exchange: a memory connection never leaves the process, so plaintext costs no secrecy
//! there, and it spares the handshakes' curve arithmetic, which at hundreds of nodes
//! sharing a few cores would dominate a simulation.

use crate::behaviour::Behaviour;
use crate::error::NetworkError;
use libp2p::core::transport::{Boxed, MemoryTransport};
use libp2p::core::{muxing::StreamMuxerBox, upgrade, Transport as _};
use libp2p::{identity::Keypair, noise, plaintext, relay, tcp, yamux, PeerId, Swarm};
use std::fmt::Display;
use std::time::Duration;

/// How the service's connections are carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// TCP + noise + yamux, and QUIC: what a node uses.
    #[default]
    Tcp,
    /// libp2p's in-process memory transport + yamux, for simulations and tests (listen on
    /// `/memory/N`): with noise if `noise`, else with plaintext's key exchange.
    Memory { noise: bool },
}

/// Idle connections close after this long (gossipsub's long-lived streams keep most
/// connections from ever being idle: the connection manager bounds those).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A QUIC connection that hears nothing for this long is closed (libp2p's default is
/// 10 s). A peer killed outright sends no close over QUIC (TCP's kernel resets the
/// connection instead): until this runs out, its connection, and every relayed
/// connection through it when it is a relay, stays open and silently swallows requests.
const QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A QUIC connection with nothing to send pings its peer this often (libp2p's default
/// is 5 s), well within [`QUIC_IDLE_TIMEOUT`] so that a live but quiet peer is not
/// taken for dead even if a ping or two is lost.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// libp2p's QUIC configuration with a dead peer noticed within [`QUIC_IDLE_TIMEOUT`].
fn quic(mut config: libp2p::quic::Config) -> libp2p::quic::Config {
    config.max_idle_timeout = QUIC_IDLE_TIMEOUT.as_millis() as u32;
    config.keep_alive_interval = QUIC_KEEP_ALIVE;
    config
}

fn setup<E: Display>(what: &'static str) -> impl FnOnce(E) -> NetworkError {
    move |e| NetworkError::Setup(format!("{what}: {e}"))
}

/// Builds the swarm running the behaviour `make` returns (given the relay client's
/// behaviour half) over `transport` (not listening yet).
pub(crate) fn swarm(
    keypair: Keypair,
    make: impl FnOnce(relay::client::Behaviour) -> Result<Behaviour, NetworkError>,
    transport: Transport,
) -> Result<Swarm<Behaviour>, NetworkError> {
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair).with_tokio();
    let swarm = match transport {
        Transport::Tcp => builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(setup("transport"))?
            .with_quic_config(quic)
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(setup("relay transport"))?
            .with_behaviour(|_, relay| make(relay).map_err(Box::from))
            .map_err(setup("behaviour"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .build(),
        Transport::Memory { noise } => builder
            .with_other_transport(|key| memory(key, noise))
            .map_err(setup("transport"))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(setup("relay transport"))?
            .with_behaviour(|_, relay| make(relay).map_err(Box::from))
            .map_err(setup("behaviour"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .build(),
    };
    Ok(swarm)
}

/// The in-memory transport, authenticated (noise or plaintext) and multiplexed (yamux).
fn memory(
    key: &Keypair,
    noise: bool,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let wire = MemoryTransport::default().upgrade(upgrade::Version::V1);
    Ok(if noise {
        wire.authenticate(noise::Config::new(key)?)
            .multiplex(yamux::Config::default())
            .boxed()
    } else {
        wire.authenticate(plaintext::Config::new(key))
            .multiplex(yamux::Config::default())
            .boxed()
    })
}
