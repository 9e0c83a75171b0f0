//! The captures of real tools in `tests/data/recon` (recorded by its `record.sh`), replayed
//! through `scramd replay`.

use std::process::Command;

use serde_json::Value;

use super::SCRAMD;

/// Where the captures live.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/recon");

/// Every alert of `capture` (its name without `.pcap`), each checked against the EVE schema's
/// rules.
pub fn replay(capture: &str) -> Vec<Value> {
    replay_with(capture, "")
}

/// As [`replay`], with `config` (TOML) as the configuration.
pub fn replay_with(capture: &str, config: &str) -> Vec<Value> {
    let path = format!("{DIR}/{capture}.pcap");
    let dir = super::Scratch::new(capture);
    let cfg = dir.write("scram.toml", config.as_bytes());
    let out = Command::new(SCRAMD)
        .args(["replay", "--config", cfg.to_str().unwrap(), &path])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{capture}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for a in &alerts {
        super::eve::assert_valid(a);
    }
    alerts
}

/// An alert's detector.
pub fn detector(a: &Value) -> &str {
    a["alert"]["context"]["scram"]["detector"].as_str().unwrap()
}

/// An alert's `alert.context.scram`.
pub fn scram(a: &Value) -> &Value {
    &a["alert"]["context"]["scram"]
}
