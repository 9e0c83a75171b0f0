//! The table of a detector that is only switched on or off: `[detect.NAME] enabled = true`.

use serde::Deserialize;

/// `[detect.NAME]` with only `enabled`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToggle {
    /// `enabled`.
    pub enabled: Option<bool>,
}

/// The settings of a detector that is only switched on or off (on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toggle {
    /// On or off.
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Toggle { enabled: true }
    }
}

impl Toggle {
    /// Applies a toggle table.
    pub fn configure(&mut self, raw: Option<RawToggle>) {
        if let Some(e) = raw.and_then(|t| t.enabled) {
            self.enabled = e;
        }
    }

    /// `[detect.NAME]` as TOML.
    pub fn toml(&self, name: &str) -> String {
        format!("\n[detect.{name}]\nenabled = {}\n", self.enabled)
    }
}
