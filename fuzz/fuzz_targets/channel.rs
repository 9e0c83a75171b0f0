//! Any bytes as a datagram on the privilege-separation channel, in either direction: the decoder
//! must never panic, and whatever it accepts must encode back to the same bytes (so no two
//! encodings mean one message, and nothing it accepts is lost on the way back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scram::privsep::wire::{ToParser, ToPrivileged};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ToPrivileged::decode(data) {
        let (buf, len) = m.encode();
        assert_eq!(&buf[..len], data);
    }
    if let Ok(m) = ToParser::decode(data) {
        let (buf, len) = m.encode();
        assert_eq!(&buf[..len], data);
    }
});
