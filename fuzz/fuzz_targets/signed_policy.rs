//! A policy from outside: the `SignedPolicy` an agent receives (gRPC Ack, retained MQTT
//! message, its own file on disk) goes through `verify` with a pinned key; and, because
//! a forged signature stops almost every input there, the policy bytes are also decoded,
//! validated and, when valid, evaluated over a week (windows in local time over DST:
//! the arithmetic a hostile policy could push to overflow).
#![no_main]

use jiff::{Timestamp, ToSpan};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use veille_proto::v1::{ChassisClass, Policy, SignedPolicy};
use veille_proto::{DeviceFacts, evaluate, validate_policy};

/// A fixed key (not secret: verification is what is fuzzed); the seeds in
/// fuzz/seeds/signed_policy are signed with it.
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
/// 2026-03-28T00:00Z: the week around Europe's spring DST change.
const START_S: i64 = 1_774_656_000;

fuzz_target!(|data: &[u8]| {
    let key = veille_proto::signing::parse_signing_key(KEY)
        .expect("a valid key")
        .verifying_key();
    if let Ok(signed) = SignedPolicy::decode(data) {
        let _ = veille_proto::verify(&signed, &key, Some(1));
    }
    let Ok(policy) = Policy::decode(data) else {
        return;
    };
    if validate_policy(&policy).is_err() {
        return;
    }
    let facts = DeviceFacts {
        chassis: ChassisClass::Desktop,
        tags: vec!["tag".into()],
        hostname: "pc-1".into(),
        allow_shutdown: false,
    };
    let start = Timestamp::from_second(START_S).unwrap();
    let end = start + (7 * 24).hours();
    let _ = veille_proto::policy::spans_between(&policy, start, end);
    let mut now = start;
    while now < end {
        let _ = evaluate(&policy, now, &facts, 3600, 1, Some(start));
        let _ = veille_proto::policy::shutdown_deadline(&policy, now, u32::MAX);
        now += 97.minutes();
    }
});
