//! A monitor's EDID (`/sys/class/drm/*/edid`, the Windows registry): bytes from the
//! monitor's firmware, then what the inventory takes from them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(edid) = veille_agent::probes::edid::parse_edid(data) {
        let _ = edid.serial();
        let _ = edid.to_monitor();
    }
});
