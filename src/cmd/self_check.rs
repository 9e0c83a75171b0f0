//! `scramd self-check`: confines a child exactly as `run` confines itself, tries what an attacker
//! with code execution would try, and prints how each attempt ended.

use std::io::Write;
use std::path::Path;

use super::Error;
use crate::sandbox::selfcheck::{self, Attempt, Outcome};

/// Runs every attempt; fails with [`Error::SelfCheck`] when one did not end as it must.
pub fn self_check(config_path: Option<&Path>) -> Result<(), Error> {
    let (config, config_path) = super::load_config(config_path)?;
    let plan = super::sandbox_plan(&config, config_path.as_deref(), Vec::new());
    // A closed stdout (`| head`) must not turn the report into a panic.
    let mut out = std::io::stdout().lock();
    let mut all_as_expected = true;
    let mut shown_status = false;
    for attempt in Attempt::ALL {
        let report = selfcheck::run(&plan, attempt).map_err(|e| Error::Os {
            what: attempt.describe(),
            source: e,
        })?;
        if let Outcome::ConfineFailed { message, exit } = &report.outcome {
            return Err(Error::Child {
                message: message.clone(),
                exit: *exit,
            });
        }
        if !shown_status {
            let _ = writeln!(
                out,
                "confined state (/proc/PID/status of a confined child):"
            );
            for line in &report.status {
                let _ = writeln!(out, "  {line}");
            }
            shown_status = true;
        }
        let ok = report.outcome.as_expected(attempt);
        all_as_expected &= ok;
        // Each refusal names the layer that refused it.
        let shown = match &report.outcome {
            Outcome::Refused(e) if !e.contains("Address family not supported") => {
                format!("refused: {e} ({})", attempt.refused_by())
            }
            o => o.to_string(),
        };
        let _ = writeln!(
            out,
            "{:<4} {:<40} {shown}",
            if ok { "ok" } else { "FAIL" },
            attempt.describe(),
        );
    }
    if all_as_expected {
        let _ = writeln!(out, "every attack was refused; capture still works");
        Ok(())
    } else {
        let _ = writeln!(
            out,
            "some attempts did not end as they must (FAIL lines above)"
        );
        Err(Error::SelfCheck)
    }
}
