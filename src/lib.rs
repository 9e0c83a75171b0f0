//! scram: a network defense daemon.
//!
//! Frames flow from the kernel's TPACKET_V3 rings ([`capture`]) to the next stage through the
//! [`capture::FrameSink`] seam. [`sys`] fences every `unsafe` system call; [`config`] reads the
//! TOML configuration; [`daemon`] runs it all under systemd or by hand; [`exit`] maps failures to
//! the exit codes operators and units rely on. See ARCHITECTURE.md for the map and invariants.

pub mod alert;
pub mod capture;
pub mod config;
pub mod craft;
pub mod daemon;
pub mod decode;
pub mod detect;
pub mod exit;
pub mod logging;
pub mod netlink;
pub mod pipeline;
pub mod replay;
pub mod response;
pub mod sandbox;
pub mod sys;
