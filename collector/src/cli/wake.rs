//! `veille-collector wake --org O (--device D | --hostname H)`: queue a Wake-on-LAN
//! request through an awake agent of the device's subnet, via the running server's API
//! (`POST /api/v1/devices/{id}/wake`: its relays get it at their next Ack) or, with no
//! server, in the shared store (a running collector picks it up within
//! `policy::cache::REFRESH_EVERY`).

use crate::cli::remote::{self, Answer, ApiCall, NoStore};
use crate::cli::{CliError, ConfigArgs};
use crate::policy::wake::{self, Queued, WakeError};
use crate::web::html::url_component;

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["device", "hostname"])))]
pub struct WakeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The device's organisation.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// The device id to wake.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Or its hostname (from its inventory; must name one device of the org).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Output: `text` (one sentence) or `json` (the queued request).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// Queues the request; the answer says which relay sends the packet where.
pub async fn command(args: WakeArgs) -> Result<String, CliError> {
    let config = args.config.load_config()?;
    let device = match (&args.device, &args.hostname) {
        (Some(d), _) => d.clone(),
        (None, h) => {
            let records = crate::cli::list_devices(&config)
                .await
                .map_err(|e| CliError::Wake(WakeError::Corrupt(e.to_string())))?;
            wake::pick_by_hostname(&records, &args.org, h.as_deref().unwrap_or_default())?
        }
    };
    let path = format!(
        "/api/v1/devices/{}/wake?org={}",
        url_component(&device),
        url_component(&args.org)
    );
    let call = ApiCall {
        method: "POST",
        path: &path,
        json_body: None,
    };
    let org = args.org.clone();
    let answer = remote::run(&config, call, NoStore::Report, move |store| {
        wake::enqueue(store, &org, &device, crate::clock::now_ms(), "cli").map_err(CliError::from)
    })
    .await?;
    let queued: Queued = match answer {
        Answer::Local(q) => q,
        Answer::Server(body) => serde_json::from_slice(&body)
            .map_err(|e| CliError::Wake(WakeError::Corrupt(e.to_string())))?,
        Answer::NoStore(path) => {
            return Err(CliError::Wake(WakeError::Corrupt(format!(
                "no store in {}: nothing to wake",
                path.display()
            ))));
        }
    };
    if args.format == "json" {
        return Ok(serde_json::to_string_pretty(&queued).unwrap_or_default() + "\n");
    }
    let r = &queued.request;
    let expires = jiff::Timestamp::from_millisecond(r.expires_unix_ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    Ok(format!(
        "{} {} ({}) through relay {} on {}: magic packet to {} at its next report; \
         the request expires at {expires}\n",
        if queued.already_pending {
            "already pending: wake"
        } else {
            "queued: wake"
        },
        r.target_device_id,
        r.mac,
        r.relay_device_id,
        r.subnet,
        r.broadcast,
    ))
}
