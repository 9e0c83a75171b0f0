//! Counters as operators read them: the periodic and final log lines, systemd's `STATUS=`, and
//! the held-back summary at shutdown. Reads counters; never on the packet path.

use crate::capture::InterfaceStats;
use crate::detect::{key_addr, AddrKey};
use crate::pipeline::PipelineTotals;

/// The one-line `STATUS=` systemd shows in `systemctl status`.
pub fn status_line(
    interfaces: &[String],
    frames: u64,
    kernel_drops: u64,
    alerts: u64,
    suppressed: u64,
    decode_errors: u64,
) -> String {
    format!(
        "capturing on {}: {frames} frames, {kernel_drops} kernel drops, {alerts} alerts, {suppressed} suppressed, {decode_errors} decode errors",
        interfaces.join(", ")
    )
}

/// The counters of that line, as the parser reports them to the privileged part.
pub fn status(stats: &[InterfaceStats], t: &PipelineTotals) -> crate::privsep::wire::ToPrivileged {
    crate::privsep::wire::ToPrivileged::Status {
        frames: stats.iter().map(|s| s.frames).sum(),
        kernel_drops: stats.iter().map(|s| s.kernel_drops).sum(),
        alerts: t.alerts,
        suppressed: t.suppressed,
        decode_errors: t.decode_errors_total(),
    }
}

/// Logs one line per interface (with several interfaces, a total) and the pipeline's counters.
pub fn log(what: &str, stats: &[InterfaceStats], t: &PipelineTotals) {
    log_capture(what, stats);
    tracing::info!(
        decoded = t.decoded,
        decode_errors = t.decode_errors_total(),
        alerts = t.alerts,
        alerts_suppressed = t.suppressed,
        alerts_dropped = t.alerts_dropped,
        route_overflow = t.route_overflow,
        state_evictions = t.evictions,
        flow_evictions = t.flow_evictions,
        "{what} pipeline: {} decoded, {} decode errors ({}), {} alerts, {} suppressed, {} dropped (alert queue full), {} observations or flood tallies dropped (shard queue full), {} state evictions, {} flow evictions",
        t.decoded,
        t.decode_errors_total(),
        t.decode_errors_by_layer(),
        t.alerts,
        t.suppressed,
        t.alerts_dropped,
        t.route_overflow,
        t.evictions,
        t.flow_evictions
    );
}

fn log_capture(what: &str, stats: &[InterfaceStats]) {
    let mut total = InterfaceStats {
        name: "total".into(),
        ..Default::default()
    };
    for s in stats {
        log_interface(what, s);
        total.frames += s.frames;
        total.bytes += s.bytes;
        total.blocks += s.blocks;
        total.bad_blocks += s.bad_blocks;
        total.kernel_packets += s.kernel_packets;
        total.kernel_drops += s.kernel_drops;
        total.kernel_freezes += s.kernel_freezes;
    }
    if stats.len() > 1 {
        log_interface(what, &total);
    }
}

fn log_interface(what: &str, s: &InterfaceStats) {
    tracing::info!(
        iface = %s.name,
        frames = s.frames,
        bytes = s.bytes,
        blocks = s.blocks,
        bad_blocks = s.bad_blocks,
        kernel_packets = s.kernel_packets,
        kernel_drops = s.kernel_drops,
        kernel_freezes = s.kernel_freezes,
        "{what} {}: {} frames, {} bytes, {} kernel drops, {} queue freezes, {} malformed blocks",
        s.name,
        s.frames,
        s.bytes,
        s.kernel_drops,
        s.kernel_freezes,
        s.bad_blocks
    );
}

/// Logs the repeats each alert key held back since it was last reported (at shutdown).
pub fn log_held_back(pipelines: &[crate::pipeline::Pipeline]) {
    for p in pipelines {
        p.shard().held_back(|d, src, dst, held| {
            tracing::info!(
                "{}: {held} repeat(s) of the alert {} -> {} held back since it was last reported",
                d.name(),
                key_text(src),
                key_text(dst)
            );
        });
    }
}

/// An address key as text, `-` for none.
fn key_text(k: AddrKey) -> String {
    if k == 0 {
        "-".into()
    } else {
        key_addr(k).to_string()
    }
}
