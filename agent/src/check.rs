//! `veille-agent check-config`: whether this machine's config is complete enough to
//! run. The systemd unit runs it as `ExecCondition=`, so a freshly installed package
//! stays inactive (not failed, not retrying) until an operator has set the collector
//! URL and the enrollment token in /etc/veille/agent.toml.

use crate::config::AgentConfig;

/// What is missing or unusable, one line each; empty when the agent can run.
pub fn missing(config: &AgentConfig) -> Vec<String> {
    let mut missing = Vec::new();
    if config.collector.trim().is_empty() {
        missing.push(
            "collector is empty: set the collector URL (https://host:7401, http://host:7401, \
             mqtts://host:8883 or mqtt://host:1883)"
                .to_owned(),
        );
    }
    if config.token.trim().is_empty() {
        missing.push("token is empty: set the organisation's enrollment token".to_owned());
    }
    let url = config.collector_url();
    if url.starts_with("https://") || url.starts_with("mqtts://") {
        let tls = config.tls();
        if let Err(e) = tls.ca_pem() {
            missing.push(e.to_string());
        }
        if let Err(e) = tls.identity_pem() {
            missing.push(e.to_string());
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> AgentConfig {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        AgentConfig::load(None, env, toml::Table::new()).unwrap().0
    }

    #[test]
    fn the_packaged_defaults_are_not_ready_and_say_why() {
        let m = missing(&load(&[]));
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("collector is empty") && m[1].starts_with("token is empty"));
        let ready = load(&[
            ("VEILLE_COLLECTOR", "http://collector:7401"),
            ("VEILLE_TOKEN", "t0k3n-long-enough"),
        ]);
        assert!(missing(&ready).is_empty());
        let bad_ca = load(&[
            ("VEILLE_COLLECTOR", "https://collector:7401"),
            ("VEILLE_TOKEN", "t0k3n-long-enough"),
            ("VEILLE_CA_CERT", "/nonexistent/ca.pem"),
        ]);
        let m = missing(&bad_ca);
        assert!(
            m.len() == 1 && m[0].contains("/nonexistent/ca.pem"),
            "{m:?}"
        );
    }
}
