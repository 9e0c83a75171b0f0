//! The rules of Suricata's EVE JSON schema (`etc/schema.json` of OISF/suricata, main) that an
//! alert record meets, checked field by field: the record is an object with no property the
//! schema does not list (`additionalProperties: false` at the top and in `alert`), every listed
//! property has the schema's type, `timestamp` matches its pattern, `event_type` and `timestamp`
//! are present. `alert.context` is the one free-form object. Event objects of other event types
//! (`dns`, `flow`, `tls`, ...) are listed by name only: an alert record must not carry them.

use serde_json::Value;

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    /// An array of numbers (`vlan`).
    Numbers,
    /// An object whose keys the schema fixes (checked by its own rule below).
    Object,
}

/// Top-level properties of the schema with a scalar or array type.
const TOP: &[(&str, Ty)] = &[
    ("app_proto", Ty::Str),
    ("app_proto_expected", Ty::Str),
    ("app_proto_orig", Ty::Str),
    ("app_proto_tc", Ty::Str),
    ("app_proto_ts", Ty::Str),
    ("capture_file", Ty::Str),
    ("community_id", Ty::Str),
    ("dest_ip", Ty::Str),
    ("dest_port", Ty::Int),
    ("direction", Ty::Str),
    ("event_type", Ty::Str),
    ("flow_id", Ty::Int),
    ("host", Ty::Str),
    ("icmp_code", Ty::Int),
    ("icmp_type", Ty::Int),
    ("in_iface", Ty::Str),
    ("log_level", Ty::Str),
    ("packet", Ty::Str),
    ("parent_id", Ty::Int),
    ("payload", Ty::Str),
    ("payload_printable", Ty::Str),
    ("pcap_cnt", Ty::Int),
    ("pcap_filename", Ty::Str),
    ("pkt_src", Ty::Str),
    ("proto", Ty::Str),
    ("response_icmp_code", Ty::Int),
    ("response_icmp_type", Ty::Int),
    ("spi", Ty::Int),
    ("src_ip", Ty::Str),
    ("src_port", Ty::Int),
    ("stream", Ty::Int),
    ("timestamp", Ty::Str),
    ("tx_id", Ty::Int),
    ("vlan", Ty::Numbers),
    ("alert", Ty::Object),
];

/// `alert`'s properties.
const ALERT: &[(&str, Ty)] = &[
    ("action", Ty::Str),
    ("category", Ty::Str),
    ("gid", Ty::Int),
    ("rev", Ty::Int),
    ("rule", Ty::Str),
    ("severity", Ty::Int),
    ("signature", Ty::Str),
    ("signature_id", Ty::Int),
    ("xff", Ty::Str),
    ("metadata", Ty::Object),
    ("source", Ty::Object),
    ("target", Ty::Object),
    ("context", Ty::Object),
];

fn has_type(v: &Value, ty: Ty) -> bool {
    match ty {
        Ty::Str => v.is_string(),
        Ty::Int => v.is_i64() || v.is_u64(),
        Ty::Numbers => v.as_array().is_some_and(|a| a.iter().all(Value::is_number)),
        Ty::Object => v.is_object(),
    }
}

/// `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+[+\-]\d+$`
fn timestamp_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit) && !d.is_empty())
    };
    if b.len() < 23 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' {
        return false;
    }
    if !digits(8..10) || b[10] != b'T' || !digits(11..13) || b[13] != b':' {
        return false;
    }
    if !digits(14..16) || b[16] != b':' || !digits(17..19) || b[19] != b'.' {
        return false;
    }
    let rest = &s[20..];
    let Some(sign) = rest.find(['+', '-']) else {
        return false;
    };
    let (frac, zone) = (&rest[..sign], &rest[sign + 1..]);
    !frac.is_empty()
        && frac.bytes().all(|c| c.is_ascii_digit())
        && !zone.is_empty()
        && zone.bytes().all(|c| c.is_ascii_digit())
}

fn check_props(
    path: &str,
    obj: &serde_json::Map<String, Value>,
    allowed: &[(&str, Ty)],
) -> Vec<String> {
    let mut errors = Vec::new();
    for (k, v) in obj {
        match allowed.iter().find(|(name, _)| name == k) {
            None => errors.push(format!("{path}{k}: not allowed by the schema")),
            Some((_, ty)) if !has_type(v, *ty) => {
                errors.push(format!("{path}{k}: wrong type ({v})"))
            }
            Some(_) => {}
        }
    }
    errors
}

/// The schema violations of one record (empty when it validates).
pub fn violations(record: &Value) -> Vec<String> {
    let Some(obj) = record.as_object() else {
        return vec!["the record is not an object".into()];
    };
    let mut errors = check_props("", obj, TOP);
    for required in ["timestamp", "event_type"] {
        if !obj.contains_key(required) {
            errors.push(format!("{required}: required"));
        }
    }
    if let Some(ts) = obj.get("timestamp").and_then(Value::as_str) {
        if !timestamp_ok(ts) {
            errors.push(format!("timestamp {ts:?} does not match the pattern"));
        }
    }
    if let Some(alert) = obj.get("alert").and_then(Value::as_object) {
        errors.extend(check_props("alert.", alert, ALERT));
        for side in ["source", "target"] {
            if let Some(o) = alert.get(side).and_then(Value::as_object) {
                errors.extend(check_props(
                    &format!("alert.{side}."),
                    o,
                    &[("ip", Ty::Str), ("port", Ty::Int)],
                ));
            }
        }
        if let Some(m) = alert.get("metadata").and_then(Value::as_object) {
            for (k, v) in m {
                let strings = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
                if !strings {
                    errors.push(format!("alert.metadata.{k}: not an array of strings"));
                }
            }
        }
    }
    errors
}

/// Panics with the violations when `record` does not validate.
pub fn assert_valid(record: &Value) {
    let v = violations(record);
    assert!(v.is_empty(), "EVE schema violations {v:?} in {record}");
}
