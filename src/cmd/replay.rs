//! `scramd replay`: the detection pipeline over capture files, packet timestamps as the clock,
//! alerts as EVE JSON lines on stdout. Reads the files confined: no capability, no other file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Error;
use crate::alert::AlertWriter;

/// Replays `files` in order; fails with [`Error::Input`] when a file could not be read to its
/// end (the others are still replayed).
pub fn replay(config_path: Option<&Path>, files: &[PathBuf]) -> Result<(), Error> {
    let (config, _) = super::load_config(config_path)?;
    let names = files
        .iter()
        .map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let mut writer = AlertWriter::new(names).with_sensor(config.alerts.sensor());
    writer.add_json_writer("stdout", Box::new(std::io::stdout()));
    if let Some(j) = config.alerts.json.as_deref().filter(|j| *j != "-") {
        writer.add_json(j).map_err(|source| Error::AlertSink {
            target: format!("alerts.json {j}"),
            source,
        })?;
    }
    // The capture files are hostile input: read them with no capability, no way to execute or
    // open anything else, and the daemon's system call filter.
    let mut plan = super::sandbox_plan(&config, None, Vec::new());
    plan.read_exact = files.to_vec();
    plan.write_files = config
        .alerts
        .json
        .iter()
        .filter(|j| *j != "-")
        .map(PathBuf::from)
        .collect();
    plan.write_dirs.clear();
    let e = crate::sandbox::confine_unprivileged(&plan)?;
    if !e.enforced() && e != crate::sandbox::fs::Enforcement::Disabled {
        tracing::warn!("Landlock is not available on this kernel: replay reads unconfined")
    }
    let (report, _writer) = crate::replay::replay(files, Arc::new(config.detect), writer);
    for f in &report.files {
        if f.complete() && f.skipped == 0 && f.unsupported.is_empty() {
            tracing::info!("{}", f.summary());
        } else if f.complete() {
            tracing::warn!("{}", f.summary());
        } else {
            tracing::error!("{}", f.summary());
        }
    }
    let t = &report.totals;
    tracing::info!(
        packets = report.packets(),
        decoded = t.decoded,
        decode_errors = t.decode_errors_total(),
        alerts = report.alerts,
        suppressed = t.suppressed,
        "replayed {} packets from {} file(s): {} decoded ({} tiny first fragments), {} decode errors ({}), {} of unsupported link types, {} alerts, {} repeats suppressed",
        report.packets(),
        files.len(),
        t.decoded,
        t.tiny_fragments,
        t.decode_errors_total(),
        t.decode_errors_by_layer(),
        report.unsupported(),
        report.alerts,
        t.suppressed
    );
    match report.files.iter().filter(|f| !f.complete()).count() {
        0 => Ok(()),
        n => Err(Error::Input(n)),
    }
}
