//! Privilege separation's channel: the one way the unprivileged parser (decode, detect, alert
//! formatting: the code that reads attacker bytes) asks the privileged part (rings, bans, links,
//! systemd) for anything.
//!
//! - [`wire`]: the typed, bounded, versioned messages of both directions and their codec. Every
//!   datagram from the parser is decoded as hostile input; the decoder never panics and never
//!   allocates (fuzzed by `fuzz/fuzz_targets/channel.rs`).
//! - [`channel`]: the transport, a `SOCK_SEQPACKET` socketpair: one message a datagram, an
//!   oversized or cut datagram refused rather than misread.
//! - [`gate`]: what the privileged part does with a ban request before nftables sees it: an
//!   address it would never ban (this host's, loopback, IPv6 link-local, multicast, allowlisted), a
//!   duration beyond the configured one, or more requests than the rate allows is refused and
//!   counted.
//!
//! Never here: packets (the channel carries bans, counters and readiness, never frames), strings
//! the privileged part would pass on unchecked (its STATUS= line is formatted from numbers).

pub mod channel;
pub mod gate;
pub mod wire;
