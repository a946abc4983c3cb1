//! The sampler's clocks on Windows, from whichever counters this Windows (or Wine)
//! has. The interrupt-time functions are looked up at run time (`GetProcAddress`),
//! not imported: Windows refuses to start a program with an import it cannot resolve,
//! and Wine 8 starts it but aborts the process at the first call of one it lacks
//! (`QueryInterruptTime` there). Which source is used, and why, is in
//! [`WindowsClockSource`] (shared, tested on Linux); it is logged once.

use std::ffi::CStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use windows_sys::Win32::Foundation::FARPROC;
use windows_sys::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows_sys::Win32::System::SystemInformation::GetTickCount64;
use windows_sys::core::BOOL;

use super::clock::{WindowsClockSource, WindowsCounters};
use super::registry::wide;
use super::{Clocks, SystemClocks};

/// `VOID QueryInterruptTime(PULONGLONG)`.
type QueryInterruptTimeFn = unsafe extern "system" fn(*mut u64);
/// `BOOL QueryUnbiasedInterruptTime(PULONGLONG)`.
type QueryUnbiasedInterruptTimeFn = unsafe extern "system" fn(*mut u64) -> BOOL;

/// Where each function lives on Windows 10 and later: the API set the Windows SDK
/// links `QueryInterruptTime` against (resolved by the loader to `kernelbase.dll`),
/// and `kernel32.dll` for `QueryUnbiasedInterruptTime` (Windows 7 and later).
const INTERRUPT_TIME_DLL: &str = "api-ms-win-core-realtime-l1-1-1.dll";
const UNBIASED_INTERRUPT_TIME_DLL: &str = "kernel32.dll";

/// The functions found, and the source they allow.
struct Resolved {
    source: WindowsClockSource,
    interrupt_time: Option<QueryInterruptTimeFn>,
    unbiased_interrupt_time: Option<QueryUnbiasedInterruptTimeFn>,
    /// [`WindowsCounters::tick_offset_ms`] at the first reading.
    tick_baseline_ms: i64,
}

/// `name` exported by `dll` (from the system directory only), `None` when either is
/// missing. The module stays loaded for the process's life, as an import would.
fn proc_address(dll: &str, name: &CStr) -> FARPROC {
    let dll = wide(dll);
    // SAFETY: `dll` is NUL-terminated; the handle is never freed (see above).
    let module = unsafe {
        LoadLibraryExW(
            dll.as_ptr(),
            std::ptr::null_mut(),
            LOAD_LIBRARY_SEARCH_SYSTEM32,
        )
    };
    if module.is_null() {
        return None;
    }
    // SAFETY: `module` is a loaded module and `name` a NUL-terminated ASCII string.
    unsafe { GetProcAddress(module, name.as_ptr().cast()) }
}

fn resolved() -> &'static Resolved {
    static RESOLVED: OnceLock<Resolved> = OnceLock::new();
    RESOLVED.get_or_init(|| {
        let interrupt_time = proc_address(INTERRUPT_TIME_DLL, c"QueryInterruptTime").map(|f| {
            // SAFETY: QueryInterruptTime has this signature (realtimeapiset.h).
            unsafe {
                std::mem::transmute::<unsafe extern "system" fn() -> isize, QueryInterruptTimeFn>(f)
            }
        });
        let unbiased_interrupt_time =
            proc_address(UNBIASED_INTERRUPT_TIME_DLL, c"QueryUnbiasedInterruptTime").map(|f| {
                // SAFETY: QueryUnbiasedInterruptTime has this signature (realtimeapiset.h).
                unsafe {
                    std::mem::transmute::<
                        unsafe extern "system" fn() -> isize,
                        QueryUnbiasedInterruptTimeFn,
                    >(f)
                }
            });
        let source =
            WindowsClockSource::choose(interrupt_time.is_some(), unbiased_interrupt_time.is_some());
        tracing::info!(source = ?source, "{}", source.describe());
        let mut resolved = Resolved {
            source,
            interrupt_time,
            unbiased_interrupt_time,
            tick_baseline_ms: 0,
        };
        resolved.tick_baseline_ms = resolved.read().tick_offset_ms();
        resolved
    })
}

impl Resolved {
    /// The counters this source uses, read one right after the other.
    fn read(&self) -> WindowsCounters {
        let mut counters = WindowsCounters::default();
        match self.source {
            WindowsClockSource::InterruptTime => {
                if let (Some(interrupt), Some(unbiased)) =
                    (self.interrupt_time, self.unbiased_interrupt_time)
                {
                    // SAFETY: valid, writable u64s; the functions were resolved by name.
                    unsafe {
                        interrupt(&mut counters.interrupt_100ns);
                        unbiased(&mut counters.unbiased_100ns);
                    }
                }
            }
            WindowsClockSource::TickCount => {
                if let Some(unbiased) = self.unbiased_interrupt_time {
                    // SAFETY: as above; GetTickCount64 takes no arguments.
                    unsafe {
                        counters.tick_ms = GetTickCount64();
                        unbiased(&mut counters.unbiased_100ns);
                    }
                }
            }
            WindowsClockSource::TickCountOnly => {
                // SAFETY: no arguments, cannot fail.
                counters.tick_ms = unsafe { GetTickCount64() };
            }
        }
        counters
    }

    fn clocks_ms(&self) -> (u64, u64) {
        self.source.clocks_ms(&self.read(), self.tick_baseline_ms)
    }
}

/// The monotonic time seen by the last [`Clocks::boottime_ms`], so that the
/// [`Clocks::monotonic_ms`] read right after it uses the same instant and the
/// difference of the two clocks is exactly the (rounded) time asleep.
static LAST_MONOTONIC_MS: AtomicU64 = AtomicU64::new(0);

/// # Platform-specific behaviour
/// Windows: the wall clock is `SystemTime`; the boot-time clock counts sleep and
/// hibernation, the monotonic clock does not, from the counters
/// [`WindowsClockSource`] describes (the interrupt times on Windows 10 and later).
impl Clocks for SystemClocks {
    fn wall_unix_ms(&self) -> i64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn boottime_ms(&self) -> u64 {
        let (boottime, monotonic) = resolved().clocks_ms();
        LAST_MONOTONIC_MS.store(monotonic, Ordering::Relaxed);
        boottime
    }

    fn monotonic_ms(&self) -> u64 {
        let (_, now) = resolved().clocks_ms();
        let last = LAST_MONOTONIC_MS.load(Ordering::Relaxed);
        // Read right after boottime_ms (the sampler reads the two in a row): reuse its
        // instant, else a millisecond tick between the two reads would look like sleep.
        if now.saturating_sub(last) <= 1 {
            last
        } else {
            now
        }
    }
}
