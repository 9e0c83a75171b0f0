//! Any bytes as a capture file: the pcap/pcapng reader must frame what it can, stop with a typed
//! error where it cannot, and never panic or ask for more memory than its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scram::replay::file::{Reader, MAX_RECORD};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data) else { return };
    while let Ok(Some(record)) = reader.next_record() {
        assert!(record.data.len() <= MAX_RECORD);
    }
});
