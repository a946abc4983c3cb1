//! The Windows agent's SMBIOS table parser (`GetSystemFirmwareTable('RSMB')`: firmware
//! bytes, with lengths and string indexes it may get wrong).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = veille_agent::probes::smbios::parse_raw_smbios_data(data);
});
