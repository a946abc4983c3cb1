//! What a machine can do besides powering off, as Windows reports it, and the
//! decision drawn from it: kept apart from both the enforcer that acts on it and the
//! Windows calls that read it, so the decision is tested on any platform and neither
//! of those modules imports the other for it.

use veille_proto::v1::ShutdownAction;

/// What Windows' `GetPwrCapabilities` says of sleep and hibernation, reduced to what
/// the decision needs (kept apart from the call so it is tested on any platform).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerCapabilities {
    /// S3 (suspend to RAM).
    pub s3: bool,
    /// S4 (hibernate) supported by the firmware.
    pub s4: bool,
    /// The hibernation file exists (`powercfg /hibernate on`).
    pub hiber_file: bool,
    /// Modern Standby (S0 low-power idle) instead of S3.
    pub modern_standby: bool,
}

/// Whether Windows can carry `action` out, or why not (the reason is reported with
/// `POLICY_SKIPPED`; the agent never falls back to another action).
pub fn windows_verdict(caps: PowerCapabilities, action: ShutdownAction) -> Result<(), String> {
    match action {
        ShutdownAction::PowerOff | ShutdownAction::Unspecified => Ok(()),
        ShutdownAction::Hibernate if !caps.s4 => {
            Err("hibernate: the firmware has no S4 state (GetPwrCapabilities)".into())
        }
        ShutdownAction::Hibernate if !caps.hiber_file => Err(
            "hibernate: hibernation is turned off on this machine (no hiberfil.sys; \
             `powercfg /hibernate on` turns it on)"
                .into(),
        ),
        ShutdownAction::Hibernate => Ok(()),
        ShutdownAction::Sleep if caps.s3 => Ok(()),
        ShutdownAction::Sleep if caps.modern_standby => Err(
            "sleep: this machine uses Modern Standby (S0 low-power idle), which \
             SetSuspendState cannot enter; use power_off or hibernate"
                .into(),
        ),
        ShutdownAction::Sleep => Err("sleep: the firmware has no S3 state".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows' decision, from capability sets real machines report: a desktop with
    /// S3 and hibernation off, a Modern Standby laptop, a VM with neither.
    #[test]
    fn windows_says_what_it_can_and_why_not() {
        let desktop = PowerCapabilities {
            s3: true,
            s4: true,
            hiber_file: false,
            modern_standby: false,
        };
        let modern = PowerCapabilities {
            s3: false,
            s4: true,
            hiber_file: true,
            modern_standby: true,
        };
        let vm = PowerCapabilities::default();
        assert_eq!(windows_verdict(desktop, ShutdownAction::Sleep), Ok(()));
        let off = windows_verdict(desktop, ShutdownAction::Hibernate).unwrap_err();
        assert!(off.contains("powercfg /hibernate on"), "{off}");
        assert_eq!(windows_verdict(modern, ShutdownAction::Hibernate), Ok(()));
        let ms = windows_verdict(modern, ShutdownAction::Sleep).unwrap_err();
        assert!(ms.contains("Modern Standby"), "{ms}");
        assert!(
            windows_verdict(vm, ShutdownAction::Sleep)
                .unwrap_err()
                .contains("no S3")
        );
        assert!(
            windows_verdict(vm, ShutdownAction::Hibernate)
                .unwrap_err()
                .contains("no S4")
        );
        for caps in [desktop, modern, vm] {
            assert_eq!(windows_verdict(caps, ShutdownAction::PowerOff), Ok(()));
        }
    }
}
