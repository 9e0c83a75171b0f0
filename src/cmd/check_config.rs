//! `scramd check-config`: validates a configuration file and prints the effective configuration,
//! each section marked with how a change to it takes effect (see [`crate::config::RELOAD`]).

use std::path::Path;

use super::Error;

/// Prints the effective configuration of `path` on stdout.
pub fn check_config(path: &Path) -> Result<(), Error> {
    let config = crate::config::Config::load(path)?;
    print!("{}", config.to_toml());
    Ok(())
}
