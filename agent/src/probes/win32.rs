//! The Windows probes: the same facts, under the same names, as the Linux probes in
//! [`crate::probes`] (which re-exports these on Windows). Parsing lives in the shared,
//! Linux-tested modules ([`smbios`], [`windows_version`], [`edid`]); here are only the
//! Win32 calls. The clocks are in `win32_clock`.

use std::ptr;

use veille_proto::v1::Inventory;
use windows_sys::Win32::Devices::DeviceAndDriverInstallation::{
    DICS_FLAG_GLOBAL, DIGCF_PRESENT, DIREG_DEV, GUID_DEVCLASS_MONITOR, SP_DEVINFO_DATA,
    SetupDiDestroyDeviceInfoList, SetupDiEnumDeviceInfo, SetupDiGetClassDevsW,
    SetupDiOpenDevRegKey,
};
use windows_sys::Win32::Foundation::{FILETIME, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Registry::{KEY_READ, RegCloseKey};
use windows_sys::Win32::System::SystemInformation::{
    ComputerNamePhysicalDnsHostname, GetComputerNameExW, GetSystemFirmwareTable, GetTickCount64,
    GlobalMemoryStatusEx, MEMORYSTATUSEX, RSMB,
};
use windows_sys::Win32::System::Threading::{GetActiveProcessorCount, GetSystemTimes};

use super::registry::{from_wide, hklm_dword, hklm_string, key_binary};
use super::{
    Clocks, CpuTimes, DeviceId, DeviceIdSource, Host, InventoryReport, ProbeError, SystemClocks,
    edid, smbios, windows_version,
};

const CURRENT_VERSION: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";
const BOOT_ID_KEY: &str =
    r"SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management\PrefetchParameters";
const CRYPTOGRAPHY: &str = r"SOFTWARE\Microsoft\Cryptography";
const CPU_KEY: &str = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0";
/// `GetActiveProcessorCount(ALL_PROCESSOR_GROUPS)`.
const ALL_PROCESSOR_GROUPS: u16 = 0xFFFF;

/// A probe error naming the Win32 source (paths do not apply on Windows).
fn unavailable(what: &str) -> ProbeError {
    ProbeError::Unavailable {
        path: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

/// A boot id: this device's boot counter.
///
/// # Platform-specific behaviour
/// Windows has no per-boot random id; the kernel counts boots in `BootId` under
/// `...\Memory Management\PrefetchParameters`. Resuming from hibernation, including
/// "fast startup" after a shutdown from the Start menu, is not a boot (it shows as
/// sleep). Without that value, the boot time to the minute stands in.
pub fn boot_id(_host: &Host) -> Result<String, ProbeError> {
    if let Some(counter) = hklm_dword(BOOT_ID_KEY, "BootId") {
        return Ok(format!("win-boot-{counter}"));
    }
    Ok(format!("win-bt-{}", boot_time_unix_s(_host)? / 60))
}

/// Now minus the time since boot (including time asleep), Unix seconds.
pub fn boot_time_unix_s(_host: &Host) -> Result<i64, ProbeError> {
    let now_ms = SystemClocks.wall_unix_ms();
    // SAFETY: no arguments, cannot fail.
    let since_boot_ms = unsafe { GetTickCount64() };
    Ok((now_ms - i64::try_from(since_boot_ms).unwrap_or(0)) / 1000)
}

/// Seconds since boot, time asleep included (as Linux's `/proc/uptime`).
pub fn uptime_s(_host: &Host) -> Result<f64, ProbeError> {
    // SAFETY: no arguments, cannot fail.
    Ok(unsafe { GetTickCount64() } as f64 / 1000.0)
}

fn filetime_ticks(ft: &FILETIME) -> u64 {
    (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)
}

/// System-wide CPU time, in 100-ns units: busy = kernel + user − idle (kernel time
/// includes the idle loop), total = kernel + user.
pub fn cpu_times(_host: &Host) -> Result<CpuTimes, ProbeError> {
    let (mut idle, mut kernel, mut user) = (
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
    );
    // SAFETY: three valid, writable FILETIMEs.
    if unsafe { GetSystemTimes(&mut idle, &mut kernel, &mut user) } == 0 {
        return Err(unavailable("GetSystemTimes"));
    }
    let total = filetime_ticks(&kernel) + filetime_ticks(&user);
    Ok(CpuTimes {
        busy: total.saturating_sub(filetime_ticks(&idle)),
        total,
    })
}

/// The raw SMBIOS table, `None` when the firmware has none (some VMs).
fn raw_smbios() -> Option<Vec<u8>> {
    // SAFETY: a null buffer of size 0 asks for the size.
    let size = unsafe { GetSystemFirmwareTable(RSMB, 0, ptr::null_mut(), 0) };
    if size == 0 {
        return None;
    }
    let mut buf = vec![0u8; size as usize];
    // SAFETY: `buf` is writable for `size` bytes.
    let got = unsafe { GetSystemFirmwareTable(RSMB, 0, buf.as_mut_ptr(), size) };
    (got != 0 && got <= size).then(|| {
        buf.truncate(got as usize);
        buf
    })
}

fn smbios_facts() -> Option<smbios::SmbiosFacts> {
    smbios::parse_raw_smbios_data(&raw_smbios()?).ok()
}

/// The SMBIOS UUID when it is a real one, else `MachineGuid`.
///
/// # Platform-specific behaviour
/// `MachineGuid` (`HKLM\SOFTWARE\Microsoft\Cryptography`) is created at Windows setup:
/// machines cloned from one image without sysprep share it, as Linux clones share a
/// machine-id.
pub fn device_id(_host: &Host) -> Result<DeviceId, ProbeError> {
    if let Some(id) = smbios_facts().and_then(|f| f.uuid) {
        return Ok(DeviceId {
            id,
            source: DeviceIdSource::SmbiosUuid,
        });
    }
    let guid = hklm_string(CRYPTOGRAPHY, "MachineGuid")
        .map(|g| g.trim().to_ascii_lowercase())
        .filter(|g| super::is_uuid_shaped(g))
        .ok_or_else(|| unavailable(r"HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid"))?;
    Ok(DeviceId {
        id: guid,
        source: DeviceIdSource::MachineGuid,
    })
}

fn hostname() -> Option<String> {
    let mut buf = [0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` holds `len` UTF-16 units.
    let ok =
        unsafe { GetComputerNameExW(ComputerNamePhysicalDnsHostname, buf.as_mut_ptr(), &mut len) };
    (ok != 0).then(|| from_wide(&buf[..(len as usize).min(buf.len())]))
}

fn ram_bytes() -> Option<u64> {
    let mut status = MEMORYSTATUSEX {
        dwLength: std::mem::size_of::<MEMORYSTATUSEX>() as u32,
        ..Default::default()
    };
    // SAFETY: `status` is a valid MEMORYSTATUSEX with dwLength set.
    (unsafe { GlobalMemoryStatusEx(&mut status) } != 0).then_some(status.ullTotalPhys)
}

/// EDIDs of the monitors present now (`DIGCF_PRESENT`): the `EDID` value of each
/// monitor device's hardware key, the same bytes WMI's `WmiMonitorID` decodes.
fn monitor_edids() -> Vec<Vec<u8>> {
    let mut edids = Vec::new();
    // SAFETY: a valid class GUID pointer; the list is destroyed below.
    let set = unsafe {
        SetupDiGetClassDevsW(
            &GUID_DEVCLASS_MONITOR,
            ptr::null(),
            ptr::null_mut(),
            DIGCF_PRESENT,
        )
    };
    if set == INVALID_HANDLE_VALUE as isize {
        return edids;
    }
    for index in 0.. {
        let mut info = SP_DEVINFO_DATA {
            cbSize: std::mem::size_of::<SP_DEVINFO_DATA>() as u32,
            ..Default::default()
        };
        // SAFETY: `set` is a valid device info set; `info` has cbSize set.
        if unsafe { SetupDiEnumDeviceInfo(set, index, &mut info) } == 0 {
            break; // ERROR_NO_MORE_ITEMS
        }
        // SAFETY: as above; the key is closed right after the read.
        let key =
            unsafe { SetupDiOpenDevRegKey(set, &info, DICS_FLAG_GLOBAL, 0, DIREG_DEV, KEY_READ) };
        if key.is_null() || key == INVALID_HANDLE_VALUE {
            continue;
        }
        if let Some(edid) = key_binary(key, "", "EDID") {
            edids.push(edid);
        }
        // SAFETY: `key` was opened above.
        unsafe { RegCloseKey(key) };
    }
    // SAFETY: `set` came from SetupDiGetClassDevsW.
    unsafe { SetupDiDestroyDeviceInfoList(set) };
    edids
}

/// Reads the inventory. Never fails: what is missing is noted.
///
/// # Platform-specific behaviour
/// Windows: SMBIOS through `GetSystemFirmwareTable`, OS from the registry, CPU name
/// from the registry and the count of logical processors (not physical cores), RAM
/// from `GlobalMemoryStatusEx`, monitors from their EDID. Disks and battery wear are
/// not probed on Windows yet (noted).
pub fn probe_inventory(_host: &Host) -> InventoryReport {
    let mut notes = Vec::new();
    let dmi = match smbios_facts() {
        Some(facts) => smbios::to_dmi(&facts, &mut notes),
        None => {
            notes.push("dmi: no SMBIOS table (GetSystemFirmwareTable 'RSMB')".into());
            Default::default()
        }
    };
    let (os_name, os_version, kernel) = windows_version::describe(
        &hklm_string(CURRENT_VERSION, "ProductName").unwrap_or_default(),
        &hklm_string(CURRENT_VERSION, "DisplayVersion")
            .or_else(|| hklm_string(CURRENT_VERSION, "ReleaseId"))
            .unwrap_or_default(),
        &hklm_string(CURRENT_VERSION, "CurrentBuildNumber").unwrap_or_default(),
        hklm_dword(CURRENT_VERSION, "UBR"),
    );
    let mut monitors = Vec::new();
    for (i, bytes) in monitor_edids().iter().enumerate() {
        match edid::parse_edid(bytes) {
            Ok(e) => monitors.push(e.to_monitor()),
            Err(e) => notes.push(format!("monitor {i}: skipped, {e}")),
        }
    }
    let hostname = hostname().unwrap_or_else(|| {
        notes.push("hostname: GetComputerNameExW failed".into());
        String::new()
    });
    let cpu_model = hklm_string(CPU_KEY, "ProcessorNameString")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    // SAFETY: no pointer arguments.
    let cpu_cores = unsafe { GetActiveProcessorCount(ALL_PROCESSOR_GROUPS) };
    notes.push("disks, battery: not probed on Windows yet".into());
    let inventory = Inventory {
        hostname,
        os_name,
        os_version,
        kernel,
        manufacturer: dmi.manufacturer,
        model: dmi.model,
        serial: dmi.serial,
        chassis: dmi.chassis.into(),
        chassis_type: dmi.chassis_code.map_or(0, u32::from),
        cpu_model,
        cpu_cores,
        ram_bytes: ram_bytes().unwrap_or_default(),
        bios_release_date: dmi.bios_release_date,
        monitors,
        ..Default::default()
    };
    InventoryReport {
        inventory,
        unavailable: notes,
    }
}
