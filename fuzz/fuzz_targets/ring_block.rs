//! Any bytes as a TPACKET_V3 block: the walker must never panic or read out of bounds, and
//! every frame it hands over must lie inside the block.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scram::capture::block::walk_block;

fuzz_target!(|data: &[u8]| {
    let range = data.as_ptr_range();
    let _ = walk_block(data, 0, |frame, meta| {
        assert!(range.start <= frame.as_ptr() && frame.as_ptr_range().end <= range.end);
        assert_eq!(frame.len(), meta.cap_len as usize);
    });
});
