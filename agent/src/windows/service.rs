//! Running under the Windows service control manager (SCM).
//!
//! The MSI installs the service `veille-agent` (LocalSystem, automatic start) with
//! the command line `veille-agent.exe service`. The SCM then calls [`ffi_service_main`]
//! on a thread of its own; the agent runs there until a Stop or Shutdown control. At
//! every start the service sets its own recovery actions (restart after 60 s, three
//! times, failure count reset after a day, also when it stops with an error rather
//! than crashing): wixl, which builds the MSI on Linux, has no
//! `MsiServiceConfigFailureActions` table.

use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name (also in `deploy/windows/veille-agent.wxs`).
pub const SERVICE_NAME: &str = "veille-agent";

/// Resolves when the SCM asks the service to stop.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;
/// The agent itself, run once the SCM has started the service.
type Body = Box<dyn FnOnce(StopSignal) -> Result<(), String> + Send>;

static BODY: Mutex<Option<Body>> = Mutex::new(None);
static SYSTEM_STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether the SCM sent Shutdown (the machine is going down), as opposed to Stop.
pub fn system_is_stopping() -> bool {
    SYSTEM_STOPPING.load(Ordering::Relaxed)
}

/// Hands the calling thread to the SCM and runs `body` as the service; returns when
/// the service has stopped. Fails when the process was not started by the SCM.
pub fn run(
    body: impl FnOnce(StopSignal) -> Result<(), String> + Send + 'static,
) -> Result<(), windows_service::Error> {
    *BODY.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(body));
    service_dispatcher::start(SERVICE_NAME, ffi_service_main)
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    if let Err(e) = serve() {
        tracing::error!(error = %e, "service failed");
    }
}

fn status(state: ServiceState, exit_code: ServiceExitCode) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code,
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

fn serve() -> windows_service::Result<()> {
    let stop = Arc::new(Notify::new());
    let handler_stop = stop.clone();
    let handle = service_control_handler::register(SERVICE_NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            if control != ServiceControl::Stop {
                SYSTEM_STOPPING.store(true, Ordering::Relaxed);
            }
            handler_stop.notify_one();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })?;
    handle.set_service_status(status(ServiceState::Running, ServiceExitCode::NO_ERROR))?;
    if let Err(e) = set_recovery_actions() {
        tracing::warn!(error = %e, "cannot set the service's recovery actions");
    }
    let body = BODY.lock().unwrap_or_else(|e| e.into_inner()).take();
    let exit = match body {
        Some(body) => {
            let signal: StopSignal = Box::pin(async move { stop.notified().await });
            match body(signal) {
                Ok(()) => ServiceExitCode::NO_ERROR,
                Err(e) => {
                    tracing::error!(error = %e, "agent stopped with an error");
                    ServiceExitCode::ServiceSpecific(1)
                }
            }
        }
        None => ServiceExitCode::ServiceSpecific(2),
    };
    handle.set_service_status(status(ServiceState::Stopped, exit))
}

/// Restart after 60 s on the first three failures; the count resets after a day
/// without failure. The same as `sc failure veille-agent reset= 86400
/// actions= restart/60000/restart/60000/restart/60000` plus `sc failureflag
/// veille-agent 1`.
fn set_recovery_actions() -> windows_service::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
    let service = manager.open_service(
        SERVICE_NAME,
        ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_CONFIG,
    )?;
    let restart = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(60),
    };
    service.update_failure_actions(ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart.clone(), restart.clone(), restart]),
    })?;
    service.set_failure_actions_on_non_crash_failures(true)
}
