//! The device's stable identity: the key every report and the collector's device record
//! hang on, so it must survive reinstalls and agent upgrades where the platform allows.

use super::{DeviceId, DeviceIdSource, Host, ProbeError, is_uuid_shaped};

/// The SMBIOS system UUID when it is a real one, else the OS machine-id.
///
/// The machine-id is only as unique as the image it came from: machines cloned from one
/// image that was not reset (`systemd-machine-id-setup`, sysprep) share it. The
/// collector detects such conflicts (two boot sessions of one id overlapping in time).
///
/// # Platform-specific behaviour
///
/// Linux: `/sys/class/dmi/id/product_uuid` is readable by root only, so an agent running
/// unprivileged always falls through to `/etc/machine-id` (then `/var/lib/dbus/machine-id`
/// on systems without systemd). Virtual machines have an SMBIOS UUID too (set by the
/// hypervisor), which is what a VM's identity should be.
pub fn device_id(host: &Host) -> Result<DeviceId, ProbeError> {
    if let Some(id) = smbios_uuid(host) {
        return Ok(DeviceId {
            id,
            source: DeviceIdSource::SmbiosUuid,
        });
    }
    let id = match machine_id(host, "etc/machine-id") {
        Err(ProbeError::Unavailable { path, source })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            machine_id(host, "var/lib/dbus/machine-id").map_err(|err| match err {
                // Name the systemd file: it is the one an operator should look at.
                ProbeError::Unavailable { .. } => ProbeError::Unavailable { path, source },
                malformed => malformed,
            })?
        }
        other => other?,
    };
    Ok(DeviceId {
        id,
        source: DeviceIdSource::MachineId,
    })
}

/// `None` for any reason (missing, permission denied, placeholder): the machine-id is
/// then the identity, and that is not an error worth reporting.
fn smbios_uuid(host: &Host) -> Option<String> {
    let raw = host.read_to_string("sys/class/dmi/id/product_uuid").ok()?;
    let uuid = raw.trim().to_ascii_lowercase();
    if !is_uuid_shaped(&uuid) || super::smbios::is_junk_uuid(&uuid) {
        return None;
    }
    Some(uuid)
}

fn machine_id(host: &Host, relative: &str) -> Result<String, ProbeError> {
    let raw = host.read_to_string(relative)?;
    let id = raw.trim().to_ascii_lowercase();
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        // systemd writes "uninitialized" there until the first boot completes.
        return Err(ProbeError::malformed(
            host.path(relative),
            format!("expected 32 hex digits, got {:?}", truncated(&id)),
        ));
    }
    if id.chars().all(|c| c == '0') {
        return Err(ProbeError::malformed(host.path(relative), "all zeros"));
    }
    Ok(id)
}

/// Enough of a bad value to recognise it in a log, never a whole file.
fn truncated(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const MACHINE_ID: &str = "4f0c1e2a9b3d4e5f8a7b6c5d4e3f2a1b";

    fn tree(product_uuid: Option<&str>, machine_id: Option<&str>) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(uuid) = product_uuid {
            fs::create_dir_all(dir.path().join("sys/class/dmi/id")).unwrap();
            fs::write(dir.path().join("sys/class/dmi/id/product_uuid"), uuid).unwrap();
        }
        if let Some(id) = machine_id {
            fs::create_dir_all(dir.path().join("etc")).unwrap();
            fs::write(dir.path().join("etc/machine-id"), id).unwrap();
        }
        let host = Host::at(dir.path());
        (dir, host)
    }

    #[test]
    fn smbios_uuid_is_preferred_and_lowercased() {
        let (_dir, host) = tree(
            Some("4C4C4544-0042-3510-8052-B7C04F4E3732\n"),
            Some(MACHINE_ID),
        );
        let id = device_id(&host).unwrap();
        assert_eq!(id.id, "4c4c4544-0042-3510-8052-b7c04f4e3732");
        assert_eq!(id.source, DeviceIdSource::SmbiosUuid);
    }

    #[test]
    fn placeholder_smbios_uuids_fall_through_to_machine_id() {
        for junk in [
            "",
            "\n",
            "00000000-0000-0000-0000-000000000000\n",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\n",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "03000200-0400-0500-0006-000700080009\n",
            "Not Settable\n",
            "Not Present\n",
            "Default string\n",
            "To Be Filled By O.E.M.\n",
            "4c4c4544-0042-3510-8052-b7c04f4e373",
            "\u{fffd}\u{fffd}\u{fffd}",
        ] {
            let (_dir, host) = tree(Some(junk), Some(&format!("{MACHINE_ID}\n")));
            let id = device_id(&host).unwrap();
            assert_eq!(id.id, MACHINE_ID, "for product_uuid {junk:?}");
            assert_eq!(id.source, DeviceIdSource::MachineId);
        }
    }

    #[test]
    fn unreadable_product_uuid_falls_through_to_machine_id() {
        // A directory where the file should be: reading fails like a permission error
        // does for a non-root agent (which a test running as root cannot reproduce).
        let (dir, host) = tree(None, Some(MACHINE_ID));
        fs::create_dir_all(dir.path().join("sys/class/dmi/id/product_uuid")).unwrap();
        let id = device_id(&host).unwrap();
        assert_eq!(id.id, MACHINE_ID);
        assert_eq!(id.source, DeviceIdSource::MachineId);

        // Non-UTF-8 bytes.
        fs::remove_dir(dir.path().join("sys/class/dmi/id/product_uuid")).unwrap();
        fs::write(
            dir.path().join("sys/class/dmi/id/product_uuid"),
            [0xff, 0xfe],
        )
        .unwrap();
        assert_eq!(device_id(&host).unwrap().source, DeviceIdSource::MachineId);
    }

    #[test]
    fn machine_id_is_trimmed_and_lowercased() {
        let (_dir, host) = tree(None, Some(&format!("  {}\n", MACHINE_ID.to_uppercase())));
        let id = device_id(&host).unwrap();
        assert_eq!(id.id, MACHINE_ID);
        assert_eq!(id.source, DeviceIdSource::MachineId);
    }

    #[test]
    fn malformed_machine_id_is_rejected() {
        for bad in [
            "",
            "uninitialized\n",
            "4f0c1e2a9b3d4e5f8a7b6c5d4e3f2a1",
            "4f0c1e2a9b3d4e5f8a7b6c5d4e3f2a1bb",
            "4f0c1e2a-9b3d-4e5f-8a7b-6c5d4e3f2a1b",
            "zz0c1e2a9b3d4e5f8a7b6c5d4e3f2a1b",
            "00000000000000000000000000000000",
            "ééééééééééééééééééééééééééééééééééééééééééééééééé",
        ] {
            let (_dir, host) = tree(None, Some(bad));
            match device_id(&host) {
                Err(ProbeError::Malformed { path, .. }) => {
                    assert!(path.ends_with("etc/machine-id"), "{path:?}")
                }
                other => panic!("{bad:?}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn dbus_machine_id_is_used_without_systemd() {
        let (dir, host) = tree(None, None);
        fs::create_dir_all(dir.path().join("var/lib/dbus")).unwrap();
        fs::write(dir.path().join("var/lib/dbus/machine-id"), MACHINE_ID).unwrap();
        let id = device_id(&host).unwrap();
        assert_eq!(id.id, MACHINE_ID);
        assert_eq!(id.source, DeviceIdSource::MachineId);
    }

    #[test]
    fn nothing_readable_is_unavailable_naming_etc_machine_id() {
        let (_dir, host) = tree(None, None);
        match device_id(&host) {
            Err(ProbeError::Unavailable { path, source }) => {
                assert!(path.ends_with("etc/machine-id"), "{path:?}");
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
