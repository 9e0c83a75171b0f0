//! Any bytes as a frame: decode, route, detect and close incidents through two pipelines must
//! never panic.
//! The first byte picks the link type and the pipeline, and whether the frame goes alone or in
//! a batch (with its own first half and itself again: the look-ahead path of live capture).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use scram::capture::{Batch, FrameMeta};
use scram::detect::Settings;
use scram::pipeline::{Interfaces, LinkType, PipelineSet, Sizes};

static SET: OnceLock<Mutex<PipelineSet>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let set = SET.get_or_init(|| {
        Mutex::new(PipelineSet::build(2, Arc::new(Settings::default()), LinkType::Ethernet, Arc::new(Interfaces { loopback: vec![false, true], loopback_by_packet: true }), Sizes { tables: 1024, ..Sizes::default() }))
    });
    let Ok(mut set) = set.lock() else { return };
    let Some((&sel, frame)) = data.split_first() else { return };
    let which = usize::from(sel & 1);
    let link = [LinkType::Ethernet, LinkType::RawIp, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Null][usize::from((sel >> 1) & 7) % 5];
    let p = &mut set.pipelines[which];
    p.set_link(link, sel & 0x40 != 0);
    let ts_ns = u64::from(sel) * 1_000_000_000;
    if sel & 0x10 == 0 {
        p.process(frame, ts_ns, u16::from(sel >> 7), None);
    } else {
        let meta = FrameMeta { ts_ns, iface: u16::from(sel >> 7), ..FrameMeta::EMPTY };
        let mut batch = Batch::default();
        for f in [frame, &frame[..frame.len() / 2], frame] {
            batch.feed(f, &meta, p);
        }
        batch.flush(p);
    }
    for p in &mut set.pipelines {
        p.drain();
        // The clock moves: incidents and storms close, now and then all at once.
        p.tick(u64::from(sel) * 1_000_000_000);
        if sel == 0xff {
            p.tick(u64::MAX);
        }
    }
    for rx in &mut set.alert_rx {
        while let Ok(a) = rx.pop() {
            // Formatting every alert exercises the EVE and message code on hostile values.
            let _ = scram::alert::eve_json(&a, "fuzz", &scram::alert::Sensor { name: "fuzz".into(), community_id_seed: u16::from(sel) });
        }
    }
});
