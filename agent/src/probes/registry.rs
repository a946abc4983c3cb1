//! Reading `HKEY_LOCAL_MACHINE` values (`RegGetValueW`). Every function answers `None`
//! when the key or value is missing, of another type, or unreadable: callers treat a
//! missing value as "not set".

use std::ptr;

use windows_sys::Win32::Foundation::ERROR_SUCCESS;
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, REG_ROUTINE_FLAGS, RRF_RT_REG_BINARY, RRF_RT_REG_DWORD,
    RRF_RT_REG_SZ, RegGetValueW,
};

/// `s` as a NUL-terminated UTF-16 string for Win32.
pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// UTF-16 up to the first NUL, lossily decoded.
pub fn from_wide(units: &[u16]) -> String {
    let end = units.iter().position(|u| *u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

/// The raw bytes of value `name` of `subkey` under `root` (`subkey` empty: `root`
/// itself), restricted to the types in `flags`.
fn raw(root: HKEY, subkey: &str, name: &str, flags: REG_ROUTINE_FLAGS) -> Option<Vec<u8>> {
    let subkey_w = (!subkey.is_empty()).then(|| wide(subkey));
    let subkey_ptr = subkey_w.as_ref().map_or(ptr::null(), |s| s.as_ptr());
    let name_w = wide(name);
    let mut len: u32 = 0;
    // SAFETY: pointers are valid NUL-terminated strings or null; a null data pointer
    // asks for the size only.
    let rc = unsafe {
        RegGetValueW(
            root,
            subkey_ptr,
            name_w.as_ptr(),
            flags,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut len,
        )
    };
    if rc != ERROR_SUCCESS {
        return None;
    }
    // The value may grow between the two calls; a little slack avoids a retry loop.
    let mut buf = vec![0u8; len as usize + 64];
    let mut len = u32::try_from(buf.len()).ok()?;
    // SAFETY: `buf` is writable for `len` bytes.
    let rc = unsafe {
        RegGetValueW(
            root,
            subkey_ptr,
            name_w.as_ptr(),
            flags,
            ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != ERROR_SUCCESS {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

/// A `REG_SZ` (or `REG_EXPAND_SZ`, expanded) value of `HKLM\subkey`.
pub fn hklm_string(subkey: &str, name: &str) -> Option<String> {
    key_string(HKEY_LOCAL_MACHINE, subkey, name)
}

/// A string value under an open key.
pub fn key_string(root: HKEY, subkey: &str, name: &str) -> Option<String> {
    let bytes = raw(root, subkey, name, RRF_RT_REG_SZ)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(from_wide(&units))
}

/// A `REG_DWORD` value of `HKLM\subkey`.
pub fn hklm_dword(subkey: &str, name: &str) -> Option<u32> {
    let bytes = raw(HKEY_LOCAL_MACHINE, subkey, name, RRF_RT_REG_DWORD)?;
    Some(u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// A `REG_BINARY` value under an open key (`subkey` empty: the key itself).
pub fn key_binary(root: HKEY, subkey: &str, name: &str) -> Option<Vec<u8>> {
    raw(root, subkey, name, RRF_RT_REG_BINARY)
}
