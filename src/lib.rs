//! scram: a network defense daemon.
//!
//! Frames flow from the kernel's TPACKET_V3 rings ([`capture`]) to the next stage through the
//! [`capture::FrameSink`] seam. [`sys`] fences every `unsafe` system call; [`config`] reads the
//! TOML configuration; [`cmd`] holds the commands (`run` under systemd or by hand, `replay`,
//! `self-check`, `check-config`) and maps their failures to the exit codes of [`exit`]. See ARCHITECTURE.md for the map and invariants.

pub mod alert;
pub mod capture;
pub mod cli;
pub mod cmd;
pub mod config;
#[cfg(any(test, feature = "test-support"))]
pub mod craft;
pub mod decode;
pub mod detect;
pub mod exit;
pub mod flow;
pub mod logging;
pub mod netlink;
pub mod notify;
pub mod pipeline;
pub mod privsep;
pub mod replay;
pub mod response;
pub mod sandbox;
pub mod stats;
pub mod sys;
