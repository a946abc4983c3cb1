//! One spool file as the agent reads it back after a crash, a power cut or a disk error:
//! header, length, checksum, protobuf Report.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = veille_agent::spool::decode_entry(data);
});
