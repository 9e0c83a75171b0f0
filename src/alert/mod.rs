//! Alert output: EVE-style JSON lines and journal entries, written by one alert thread (or by
//! replay) from the alerts the pipelines queue.
//!
//! Owns: formatting (the human sentence, the EVE record, the journal fields), Community ID, the
//! sinks. Never runs on the packet path: pipelines only push fixed-size [`Alert`]s into bounded
//! rings.

pub mod community_id;
pub mod stage;
pub mod text;

use std::fmt::Write as _;
use std::io::Write;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::detect::{Action, Alert, Detail};
pub use text::{mac, proto_name, secs};

/// `tracing` target of alert events (the journal sink); always enabled whatever the log level.
pub const TARGET: &str = "scram::alert";

/// `2026-11-22T10:00:00.123456+0000` (UTC), as Suricata writes EVE timestamps.
pub fn eve_timestamp(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let micros = (ts_ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    /// A JSON-lines sink: a path, or `-` for stdout.
    pub json: Option<String>,
    /// Alerts each worker may queue for the alert thread before further ones are dropped
    /// (and counted).
    pub queue_capacity: usize,
    /// Observations each worker may queue for another worker's detector shard.
    pub route_queue_capacity: usize,
    /// EVE's `host`: the sensor name (the host name when unset).
    pub sensor_name: Option<String>,
    /// Community ID seed, as Suricata's `community-id-seed` (0 unless both ends agree otherwise).
    pub community_id_seed: u16,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            json: None,
            queue_capacity: 4096,
            route_queue_capacity: 16_384,
            sensor_name: None,
            community_id_seed: 0,
        }
    }
}

impl AlertsConfig {
    /// The sensor alerts name, resolved now (the host name is read before confinement).
    pub fn sensor(&self) -> crate::alert::Sensor {
        crate::alert::Sensor {
            name: self
                .sensor_name
                .clone()
                .unwrap_or_else(crate::alert::host_name),
            community_id_seed: self.community_id_seed,
        }
    }
}

/// `[alerts]` as read from the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    json: Option<Spanned<String>>,
    suppress_seconds: Option<Spanned<i64>>,
    queue_capacity: Option<Spanned<i64>>,
    route_queue_capacity: Option<Spanned<i64>>,
    sensor_name: Option<Spanned<String>>,
    community_id_seed: Option<Spanned<i64>>,
}

impl AlertsConfig {
    /// Validates `[alerts]`; returns `suppress_seconds` in ms when set (suppression belongs to
    /// the detectors' live settings). Errors carry the offending value's span.
    pub fn configure(&mut self, raw: RawAlerts) -> Result<Option<u64>, crate::detect::SpanError> {
        use crate::config::in_range;
        let a = raw;
        let mut suppress_ms = None;
        if let Some(v) = a.json {
            if v.get_ref().is_empty() {
                return Err((
                    v.span(),
                    "alerts.json is empty: give a path or \"-\" for stdout".into(),
                ));
            }
            self.json = Some(v.into_inner());
        }
        if let Some(v) = a.suppress_seconds {
            suppress_ms = Some(
                in_range(&v, 0, 86_400, "alerts.suppress_seconds").map_err(|m| (v.span(), m))?
                    as u64
                    * 1000,
            );
        }
        if let Some(v) = a.queue_capacity {
            self.queue_capacity = in_range(&v, 16, 1 << 20, "alerts.queue_capacity")
                .map_err(|m| (v.span(), m))? as usize;
        }
        if let Some(v) = a.route_queue_capacity {
            self.route_queue_capacity = in_range(&v, 16, 1 << 22, "alerts.route_queue_capacity")
                .map_err(|m| (v.span(), m))? as usize;
        }
        if let Some(v) = a.sensor_name {
            let name = v.get_ref();
            if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
                return Err((
                    v.span(),
                    "alerts.sensor_name must be 1 to 255 characters without control characters"
                        .into(),
                ));
            }
            self.sensor_name = Some(v.into_inner());
        }
        if let Some(v) = a.community_id_seed {
            self.community_id_seed = in_range(&v, 0, 65_535, "alerts.community_id_seed")
                .map_err(|m| (v.span(), m))? as u16;
        }
        Ok(suppress_ms)
    }

    /// `[alerts]` as TOML, with `suppress_ms` from the detectors' settings.
    pub fn toml(&self, suppress_ms: u64) -> String {
        let a = self;
        let mut out = String::new();
        out.push_str("\n[alerts]\n");
        match &a.json {
            Some(j) => out.push_str(&format!("json = {j:?}\n")),
            None => {
                out.push_str("# json: none (alerts go to the journal, or stdout without one)\n")
            }
        }
        out.push_str(&format!(
            "suppress_seconds = {}\nqueue_capacity = {}\nroute_queue_capacity = {}\n",
            suppress_ms / 1000,
            a.queue_capacity,
            a.route_queue_capacity
        ));
        match &a.sensor_name {
            Some(n) => out.push_str(&format!("sensor_name = {n:?}\n")),
            None => out.push_str("# sensor_name: the host name\n"),
        }
        out.push_str(&format!("community_id_seed = {}\n", a.community_id_seed));
        out
    }
}

/// Who writes the records, and how flows are named: the fields a fleet needs to tell sensors
/// apart and to join alerts with other tools' flow logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensor {
    /// EVE's `host` (Suricata's `sensor-name`): the host name unless configured.
    pub name: String,
    /// The Community ID seed (Suricata's `community-id-seed`).
    pub community_id_seed: u16,
}

/// The kernel's host name (UTS namespace), or `localhost` where it cannot be read.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The Community ID of the flow of the packet that raised the alert: ports included for TCP,
/// UDP and SCTP, ICMP types mapped, as Suricata and Zeek compute it for that flow. `None` where
/// there is no IP flow (ARP) or its ports are unknown.
pub fn community_id(a: &Alert, seed: u16) -> Option<String> {
    a.trigger.map(|t| t.community_id(seed))
}

/// The one human sentence: who, what, to whom, how many, over what time (the detector's own
/// words), then what response did and what was held back.
pub fn message(a: &Alert, iface: &str) -> String {
    if let Detail::Storm { sources } = a.detail {
        // A storm's record is the same for every detector.
        return format!(
            "{}: {} further alert(s) about {} from {sources} more source(s) held back over {} \
             (a storm of sources, likely forged: only the first {} went out)",
            a.detector.name(),
            a.suppressed,
            text::addr(a.dst),
            text::secs(a.window_ms),
            crate::detect::suppress::storm_allowance(a.detector)
        );
    }
    let mut m = (a.detector.entry().describe)(a, iface);
    if a.action == Action::Blocked {
        m.push_str("; blocked");
    }
    if a.suppressed > 0 {
        let _ = write!(
            m,
            " ({} repeats held back since the last report)",
            a.suppressed
        );
    }
    m
}

#[derive(Serialize)]
struct Eve<'a> {
    timestamp: String,
    event_type: &'static str,
    host: &'a str,
    in_iface: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proto: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    community_id: Option<String>,
    alert: EveAlert,
}

#[derive(Serialize)]
struct EveAlert {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: String,
    category: &'static str,
    severity: u8,
    /// Suricata leaves `alert.context` to the producer; scram's own fields live under `scram`.
    context: EveContext,
}

#[derive(Serialize)]
struct EveContext {
    scram: EveScram,
}

#[derive(Serialize)]
struct EveScram {
    detector: &'static str,
    count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    bytes: u64,
    window_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    router: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    router_mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scan: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_ports: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_hosts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_zero")]
    suppressed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources_held: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    distinct_sources: Option<u8>,
    message: String,
}

/// The sources an alert names (scans from several addresses), as text.
pub fn sources(a: &Alert) -> Option<Vec<String>> {
    match a.detail {
        Detail::Sources { .. } if a.detail.sources().next().is_some() => Some(
            a.detail
                .sources()
                .map(|k| crate::detect::key_addr(k).to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// The MAC an alert names (`mac`), and the one before it (`previous_mac`) or, for a decoy scan
/// sent from one MAC, the address that MAC claims (`mac_owner`).
fn macs(a: &Alert) -> (Option<String>, Option<String>) {
    match a.detail {
        Detail::Macs {
            mac: m,
            previous_mac,
            ..
        } => (Some(mac(m)), Some(mac(previous_mac))),
        Detail::Mac(m) | Detail::MacKind(m, _) => (Some(mac(m)), None),
        Detail::Sources { mac: m, .. } if m != [0; 6] => (Some(mac(m)), None),
        Detail::Router { mac: m, .. } => (Some(mac(m)), None),
        _ => (None, None),
    }
}

/// About how many distinct sources a flood came from (255: 250 or more).
fn distinct_sources(a: &Alert) -> Option<u8> {
    match a.detail {
        Detail::Sources { total, .. } if a.detector.category() == "Attempted Denial of Service" => {
            Some(total)
        }
        _ => None,
    }
}

/// The address a decoy scan's one MAC claims in ARP.
fn mac_owner(a: &Alert) -> Option<String> {
    match a.detail {
        Detail::Sources { owner, .. } if owner != 0 => {
            Some(crate::detect::key_addr(owner).to_string())
        }
        _ => None,
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Allowed => "allowed",
        Action::Blocked => "blocked",
    }
}

/// The EVE JSON record (one line, no newline).
pub fn eve_json(a: &Alert, iface: &str, sensor: &Sensor) -> String {
    let (mac_new, mac_prev) = macs(a);
    let summary = match a.detail {
        Detail::Summary(sum) => Some(sum),
        _ => None,
    };
    let record = Eve {
        timestamp: eve_timestamp(a.ts_ns),
        event_type: "alert",
        host: &sensor.name,
        in_iface: iface,
        src_ip: a.src.map(|s| s.to_string()),
        src_port: a.sport,
        dest_ip: a.dst.map(|s| s.to_string()),
        dest_port: a.dport,
        // No IP packet, no protocol: ARP has no name among IP protocols.
        proto: a.proto.map(proto_name),
        icmp_type: a.icmp.map(|i| i.0),
        icmp_code: a.icmp.map(|i| i.1),
        community_id: community_id(a, sensor.community_id_seed),
        alert: EveAlert {
            action: action_name(a.action),
            gid: 1,
            signature_id: a.detector.signature_id(),
            rev: 1,
            signature: format!("SCRAM {}", a.detector.name()),
            category: a.detector.category(),
            severity: a.detector.severity(),
            context: EveContext {
                scram: EveScram {
                    detector: a.detector.name(),
                    count: a.count,
                    bytes: a.bytes,
                    window_ms: a.window_ms,
                    mac: mac_new,
                    previous_mac: mac_prev,
                    mac_owner: mac_owner(a),
                    router: match a.detail {
                        Detail::Router { router, .. } if router != 0 => {
                            Some(std::net::Ipv6Addr::from(router).to_string())
                        }
                        _ => None,
                    },
                    router_mac: match a.detail {
                        Detail::Router { router_mac, .. } if router_mac != [0; 6] => {
                            Some(mac(router_mac))
                        }
                        _ => None,
                    },
                    flags: match a.detail {
                        Detail::Flags(combo, _) => Some(combo.into()),
                        _ => None,
                    },
                    kind: match a.detail {
                        Detail::Kind(kind) | Detail::MacKind(_, kind) => Some(kind.into()),
                        Detail::Macs {
                            flip_flop: true, ..
                        } => Some("flip-flop".into()),
                        Detail::Router { learned, .. } => Some(
                            if learned {
                                "router learned"
                            } else {
                                "router configured"
                            }
                            .into(),
                        ),
                        Detail::Summary(sum) => Some(sum.kinds()),
                        _ => None,
                    },
                    sources: sources(a),
                    scan: summary.map(|s| s.scan.unwrap_or_default().name()),
                    attempts: summary.map(|s| s.attempts),
                    answered: summary.map(|s| s.answered_total),
                    answered_ports: summary
                        .filter(|s| s.scan != Some(crate::detect::Detector::Portsweep))
                        .map(|s| s.answered().map(|p| p as u16).collect()),
                    answered_hosts: summary
                        .filter(|s| s.scan == Some(crate::detect::Detector::Portsweep))
                        .map(|s| {
                            s.answered()
                                .map(|k| crate::detect::key_addr(k).to_string())
                                .collect()
                        }),
                    suppressed: a.suppressed,
                    sources_held: match a.detail {
                        Detail::Storm { sources } => Some(sources),
                        _ => None,
                    },
                    distinct_sources: distinct_sources(a),
                    message: message(a, iface),
                },
            },
        },
    };
    serde_json::to_string(&record)
        .unwrap_or_else(|e| format!("{{\"event_type\":\"error\",\"error\":\"{e}\"}}"))
}

macro_rules! journal_event {
    ($level:expr, $a:expr, $iface:expr, $msg:expr, $macs:expr, $cid:expr, $sources:expr, $sum:expr) => {
        tracing::event!(
            target: TARGET,
            $level,
            message_id = $a.detector.message_id(),
            src_ip = $a.src.map(tracing::field::display),
            src_port = $a.sport,
            dest_ip = $a.dst.map(tracing::field::display),
            dest_port = $a.dport,
            proto = $a.proto.map(proto_name).map(tracing::field::display),
            iface = $iface,
            community_id = $cid.map(tracing::field::display),
            scram_detector = $a.detector.name(),
            scram_signature_id = $a.detector.signature_id(),
            scram_severity = $a.detector.severity(),
            scram_count = $a.count,
            scram_window_ms = $a.window_ms,
            scram_action = action_name($a.action),
            scram_suppressed = $a.suppressed,
            scram_mac = $macs.0.map(tracing::field::display),
            scram_previous_mac = $macs.1.map(tracing::field::display),
            scram_mac_owner = mac_owner($a).map(tracing::field::display),
            scram_distinct_sources = distinct_sources($a),
            scram_bytes = ($a.bytes > 0).then_some($a.bytes),
            scram_router = match $a.detail {
                Detail::Router { router, .. } if router != 0 => {
                    Some(tracing::field::display(std::net::Ipv6Addr::from(router)))
                }
                _ => None,
            },
            scram_router_mac = match $a.detail {
                Detail::Router { router_mac, .. } if router_mac != [0; 6] => {
                    Some(tracing::field::display(mac(router_mac)))
                }
                _ => None,
            },
            scram_kind = match $a.detail {
                Detail::Kind(k) | Detail::MacKind(_, k) => Some(k),
                Detail::Macs { flip_flop: true, .. } => Some("flip-flop"),
                Detail::Router { learned: true, .. } => Some("router learned"),
                Detail::Router { learned: false, .. } => Some("router configured"),
                _ => None,
            },
            scram_sources_held = match $a.detail {
                Detail::Storm { sources } => Some(sources),
                _ => None,
            },
            scram_sources = $sources.as_deref().map(tracing::field::display),
            scram_scan = $sum.map(|s| s.scan.unwrap_or_default().name()),
            scram_scan_type = $sum.map(|s| tracing::field::display(s.kinds())),
            scram_attempts = $sum.map(|s| s.attempts),
            scram_answered = $sum.map(|s| s.answered_total),
            scram_answered_list = $sum.map(|s| {
                tracing::field::display(crate::detect::scan::answered_items(&s).join(","))
            }),
            "{}",
            $msg
        )
    };
}

/// Sends the alert to the journal through `tracing` (tracing-journald maps the fields to
/// upper-case journal fields and the level to PRIORITY: severity 1 -> 3, 2 -> 4, 3 -> 5).
pub fn journal(a: &Alert, iface: &str, seed: u16) {
    let msg = message(a, iface);
    let macs = macs(a);
    let cid = community_id(a, seed);
    let srcs = sources(a).map(|s| s.join(","));
    let sum = match a.detail {
        Detail::Summary(sum) => Some(sum),
        _ => None,
    };
    match a.detector.severity() {
        1 => journal_event!(tracing::Level::ERROR, a, iface, msg, macs, cid, srcs, sum),
        2 => journal_event!(tracing::Level::WARN, a, iface, msg, macs, cid, srcs, sum),
        _ => journal_event!(tracing::Level::INFO, a, iface, msg, macs, cid, srcs, sum),
    }
}

/// An alert file, opened for appending (so lines land at its end after `copytruncate` too).
/// Made 0640 (less what the umask takes): log shippers read it through its group, which in
/// /var/log/scram (setgid, group adm) is adm.
fn open_alert_file(path: &str) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    Ok(std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?,
    ))
}

/// Alerts held while the journal's socket is gone, at most.
pub const JOURNAL_BACKLOG: usize = 4096;

/// The journal as an alert sink: whether its socket takes datagrams now, and the alerts held
/// while it does not. The log library that writes journal entries cannot say that a send
/// failed, so before each alert an empty datagram (which journald ignores) asks; the socket for
/// it is opened before confinement.
struct JournalGate {
    probe: std::os::unix::net::UnixDatagram,
    held: std::collections::VecDeque<Alert>,
    since: Option<std::time::Instant>,
    last_try: Option<std::time::Instant>,
    held_total: u64,
    lost: u64,
}

impl JournalGate {
    fn open() -> std::io::Result<JournalGate> {
        Ok(JournalGate {
            probe: std::os::unix::net::UnixDatagram::unbound()?,
            held: std::collections::VecDeque::with_capacity(JOURNAL_BACKLOG),
            since: None,
            last_try: None,
            held_total: 0,
            lost: 0,
        })
    }

    fn up(&self) -> bool {
        self.probe
            .send_to(&[], crate::logging::JOURNAL_SOCKET)
            .is_ok()
    }

    fn hold(&mut self, a: &Alert) {
        self.since.get_or_insert_with(std::time::Instant::now);
        if self.held.len() < JOURNAL_BACKLOG {
            self.held.push_back(*a);
            self.held_total += 1;
        } else {
            self.lost += 1;
        }
    }
}

/// Where alerts go.
pub struct AlertWriter {
    iface_names: Vec<String>,
    sensor: Sensor,
    journal: bool,
    gate: Option<JournalGate>,
    json: Vec<(String, Box<dyn Write + Send>)>,
    written: u64,
    write_errors: u64,
}

impl std::fmt::Debug for AlertWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertWriter")
            .field("journal", &self.journal)
            .field(
                "json",
                &self.json.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("written", &self.written)
            .finish()
    }
}

impl AlertWriter {
    /// A writer naming interfaces by slot; the sensor is `localhost`, seed 0, until
    /// [`AlertWriter::with_sensor`].
    pub fn new(iface_names: Vec<String>) -> Self {
        AlertWriter {
            iface_names,
            sensor: Sensor {
                name: "localhost".into(),
                community_id_seed: 0,
            },
            journal: false,
            gate: None,
            json: Vec::new(),
            written: 0,
            write_errors: 0,
        }
    }

    /// Names the sensor and seeds Community IDs as configured.
    pub fn with_sensor(mut self, sensor: Sensor) -> Self {
        self.sensor = sensor;
        self
    }

    /// Also send alerts to the journal (call before confinement: it opens the socket that asks
    /// whether journald's is there).
    pub fn with_journal(mut self, on: bool) -> Self {
        self.journal = on;
        self.gate = if on {
            match JournalGate::open() {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(
                        "alerts go to the journal without a check that it is there: {e}"
                    );
                    None
                }
            }
        } else {
            None
        };
        self
    }

    fn send_journal(&mut self, a: &Alert) {
        let iface = self
            .iface_names
            .get(usize::from(a.iface))
            .map(String::as_str)
            .unwrap_or("?");
        journal(a, iface, self.sensor.community_id_seed);
    }

    /// Writes the alerts held while the journal was gone, once it is back; tried at most every
    /// 200 ms. Call it regularly (the alert stage does, every pass).
    pub fn retry_journal(&mut self) {
        let Some(gate) = &mut self.gate else { return };
        if gate.held.is_empty() && gate.lost == 0 {
            return;
        }
        let now = std::time::Instant::now();
        if gate
            .last_try
            .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_millis(200))
        {
            return;
        }
        gate.last_try = Some(now);
        if !gate.up() {
            return;
        }
        let held: Vec<Alert> = gate.held.drain(..).collect();
        let (since, total, lost) = (gate.since.take(), gate.held_total, gate.lost);
        gate.held_total = 0;
        gate.lost = 0;
        for a in &held {
            self.send_journal(a);
        }
        tracing::warn!(
            "the journal's socket was gone for {:.1} s: {total} alert(s) were held and are written \
             now, {lost} lost (more than {JOURNAL_BACKLOG} held)",
            since.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0)
        );
    }

    /// Alerts held for the journal now, and lost since it went away.
    pub fn journal_held(&self) -> (usize, u64) {
        self.gate
            .as_ref()
            .map(|g| (g.held.len(), g.lost))
            .unwrap_or((0, 0))
    }

    /// Adds a JSON-lines sink: `-` for stdout, else a file opened for appending.
    pub fn add_json(&mut self, target: &str) -> std::io::Result<()> {
        let w: Box<dyn Write + Send> = if target == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(open_alert_file(target)?)
        };
        self.json.push((target.to_owned(), w));
        Ok(())
    }

    /// Opens every JSON file anew (SIGHUP, after rotation by rename: the old name now belongs to
    /// the rotated file, and lines go on in a new one). A file that cannot be opened keeps its
    /// old descriptor, with an error logged.
    pub fn reopen(&mut self) {
        for (name, w) in &mut self.json {
            if name == "-" || name == "stdout" {
                continue;
            }
            let _ = w.flush();
            match open_alert_file(name) {
                Ok(f) => {
                    *w = Box::new(f);
                    tracing::info!("SIGHUP: alert file {name} opened anew");
                }
                Err(e) => tracing::error!(
                    "SIGHUP: opening {name} anew: {e}; writing on to the file already open"
                ),
            }
        }
    }

    /// Adds any writer as a JSON-lines sink.
    pub fn add_json_writer(&mut self, name: &str, w: Box<dyn Write + Send>) {
        self.json.push((name.to_owned(), w));
    }

    /// Writes one alert to every sink.
    pub fn write(&mut self, a: &Alert) {
        let iface = self
            .iface_names
            .get(usize::from(a.iface))
            .map(String::as_str)
            .unwrap_or("?");
        if self.journal {
            match &mut self.gate {
                Some(g) if !g.held.is_empty() || !g.up() => g.hold(a),
                _ => journal(a, iface, self.sensor.community_id_seed),
            }
        }
        if !self.json.is_empty() {
            let line = eve_json(a, iface, &self.sensor);
            for (name, w) in &mut self.json {
                if let Err(e) = writeln!(w, "{line}") {
                    self.write_errors += 1;
                    if self.write_errors == 1 {
                        tracing::error!("writing alerts to {name}: {e}");
                    }
                }
            }
        }
        self.written += 1;
    }

    /// Flushes the JSON sinks. A failed flush (a full disk) is counted with the failed writes
    /// and logged once; what it could not write stays buffered and goes out with a later flush
    /// that succeeds.
    pub fn flush(&mut self) {
        for (name, w) in &mut self.json {
            if let Err(e) = w.flush() {
                self.write_errors += 1;
                if self.write_errors == 1 {
                    tracing::error!("writing alerts to {name}: {e}");
                }
            }
        }
    }

    /// Alerts written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Failed writes.
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detector;
    use community_id::FlowTuple;

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        assert_eq!(eve_timestamp(0), "1970-01-01T00:00:00.000000+0000");
        // 2026-11-22T10:00:00.123456Z
        assert_eq!(
            eve_timestamp(1_795_341_600_123_456_789),
            "2026-11-22T10:00:00.123456+0000"
        );
        assert_eq!(
            eve_timestamp(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000+0000"
        );
    }

    fn sensor() -> Sensor {
        Sensor {
            name: "web1".into(),
            community_id_seed: 0,
        }
    }

    #[test]
    fn eve_record_has_the_contract_shape() {
        let (src, dst) = (
            "192.0.2.7".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        let a = Alert {
            ts_ns: 1_795_341_600_123_456_000,
            detector: Detector::Portscan,
            src: Some(src),
            dst: Some(dst),
            proto: Some(6),
            trigger: Some(FlowTuple::new(src, dst, 6, Some((40000, 22)))),
            count: 25,
            window_ms: 3100,
            ..Alert::default()
        };
        let line = eve_json(&a, "eth0", &sensor());
        let cid = FlowTuple::new(src, dst, 6, Some((40000, 22))).community_id(0);
        assert!(
            line.starts_with(&format!(
                "{{\"timestamp\":\"2026-11-22T10:00:00.123456+0000\",\"event_type\":\"alert\",\
             \"host\":\"web1\",\"in_iface\":\"eth0\",\"src_ip\":\"192.0.2.7\",\
             \"dest_ip\":\"198.51.100.2\",\"proto\":\"TCP\",\"community_id\":\"{cid}\","
            )),
            "{line}"
        );
        assert!(line.contains(
            "\"alert\":{\"action\":\"allowed\",\"gid\":1,\"signature_id\":1000001,\"rev\":1,\
             \"signature\":\"SCRAM portscan\",\"category\":\"Attempted Information Leak\",\"severity\":2,\
             \"context\":{\"scram\":{\"detector\":\"portscan\",\"count\":25,\"window_ms\":3100,"
        ), "{line}");
        assert!(!line.contains("src_port"), "no ports on a scan: {line}");
        assert_eq!(
            message(&a, "eth0"),
            "portscan: 192.0.2.7 probed 25 ports of 198.51.100.2 in 3.1 s"
        );
        let seeded = Sensor {
            community_id_seed: 1,
            ..sensor()
        };
        assert!(eve_json(&a, "eth0", &seeded).contains(&format!(
            "\"community_id\":\"{}\"",
            FlowTuple::new(src, dst, 6, Some((40000, 22))).community_id(1)
        )));
    }

    #[test]
    fn protocol_names_are_suricatas() {
        for (n, name) in [
            (1, "ICMP"),
            (2, "IGMP"),
            (6, "TCP"),
            (17, "UDP"),
            (41, "IPv6"),
            (47, "GRE"),
            (50, "ESP"),
            (51, "AH"),
            (58, "IPv6-ICMP"),
            (89, "OSPF"),
            (103, "PIM"),
            (112, "VRRP"),
            (132, "SCTP"),
            (143, "Ethernet"),
            (144, "144"),
            (253, "253"),
        ] {
            assert_eq!(proto_name(n), name);
        }
    }

    #[test]
    fn icmp_alerts_carry_type_and_code_and_arp_alerts_no_protocol() {
        let (src, dst) = (
            "192.0.2.7".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        let a = Alert {
            detector: Detector::IcmpFlood,
            src: Some(src),
            dst: Some(dst),
            proto: Some(1),
            icmp: Some((8, 0)),
            trigger: Some(FlowTuple::icmp(src, dst, 1, 8, 0)),
            ..Alert::default()
        };
        let line = eve_json(&a, "eth0", &sensor());
        assert!(
            line.contains("\"proto\":\"ICMP\",\"icmp_type\":8,\"icmp_code\":0,\"community_id\""),
            "{line}"
        );
        let arp = Alert {
            detector: Detector::ArpSpoof,
            src: Some(src),
            detail: Detail::Macs {
                flip_flop: false,
                mac: [2, 0, 0, 0, 0, 1],
                previous_mac: [2, 0, 0, 0, 0, 2],
            },
            ..Alert::default()
        };
        let line = eve_json(&arp, "eth0", &sensor());
        assert!(!line.contains("\"proto\""), "{line}");
        assert!(!line.contains("community_id"), "{line}");
        assert!(line.contains("\"mac\":\"02:00:00:00:00:01\""), "{line}");
    }
}
