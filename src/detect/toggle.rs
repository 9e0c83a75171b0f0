//! The table of a detector that is only switched on or off: `[detect.NAME] enabled = true`.

use serde::Deserialize;

/// `[detect.NAME]` with only `enabled`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToggle {
    /// `enabled`.
    pub enabled: Option<bool>,
}

/// Applies a toggle table to `enabled`.
pub fn configure(enabled: &mut bool, raw: Option<RawToggle>) {
    if let Some(e) = raw.and_then(|t| t.enabled) {
        *enabled = e;
    }
}

/// `[detect.NAME]` as TOML.
pub fn toml(name: &str, enabled: bool) -> String {
    format!("\n[detect.{name}]\nenabled = {enabled}\n")
}
