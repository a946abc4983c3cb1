//! How the generated messages' enum fields print as JSON (`veille-agent once --format
//! json` and anything else that serialises a `veille.v1` message): by their protobuf
//! names (`"USER_INPUT"`, `"LAPTOP"`) rather than the wire's numbers, which mean
//! nothing to a reader. The type prefix some value names carry (protobuf scopes enum
//! values by package, so `ACTIVITY_RULE_USER_INPUT`) is left out, as the README and the
//! collector's reports name them. A number no enum value has (a newer peer's) prints as
//! the number. `proto/build.rs` points each enum field here with `serialize_with`.

use serde::Serializer;

use crate::v1::{ActivityRule, ChassisClass, EnergySource, EventKind, PolicyMode, ShutdownAction};

/// A generated protobuf enum: its protobuf name for a wire number, if it has one.
pub trait ProtoEnum {
    fn name_of(value: i32) -> Option<&'static str>;
}

macro_rules! proto_enum {
    ($($t:ty => $prefix:literal),*) => {$(
        impl ProtoEnum for $t {
            fn name_of(value: i32) -> Option<&'static str> {
                <$t>::try_from(value).ok().map(|e| {
                    let name = e.as_str_name();
                    name.strip_prefix($prefix).unwrap_or(name)
                })
            }
        }
    )*};
}

proto_enum!(
    ActivityRule => "ACTIVITY_RULE_",
    ChassisClass => "CHASSIS_CLASS_",
    EnergySource => "ENERGY_SOURCE_",
    EventKind => "EVENT_KIND_",
    PolicyMode => "POLICY_MODE_",
    ShutdownAction => "SHUTDOWN_ACTION_"
);

/// `serialize_with` for an enum field.
pub fn name<E: ProtoEnum, S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
    match E::name_of(*value) {
        Some(name) => s.serialize_str(name),
        None => s.serialize_i32(*value),
    }
}

/// `serialize_with` for a repeated enum field.
pub fn names<E: ProtoEnum, S: Serializer>(values: &[i32], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(values.len()))?;
    for v in values {
        match E::name_of(*v) {
            Some(name) => seq.serialize_element(name)?,
            None => seq.serialize_element(v)?,
        }
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use crate::v1::{Event, Inventory, Policy, Report};

    use super::*;

    #[test]
    fn enum_fields_print_their_names_and_unknown_numbers_stay_numbers() {
        let report = Report {
            activity_rule: ActivityRule::UserInput as i32,
            events: vec![Event {
                kind: EventKind::Boot as i32,
                ..Event::default()
            }],
            ..Report::default()
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["activity_rule"], "USER_INPUT");
        assert_eq!(v["events"][0]["kind"], "BOOT");
        let inv = Inventory {
            chassis: ChassisClass::Laptop as i32,
            ..Inventory::default()
        };
        assert_eq!(serde_json::to_value(&inv).unwrap()["chassis"], "LAPTOP");
        let policy = Policy {
            mode: PolicyMode::Enforce as i32,
            excluded_chassis: vec![ChassisClass::Server as i32, 999],
            ..Policy::default()
        };
        let v = serde_json::to_value(&policy).unwrap();
        assert_eq!(v["mode"], "ENFORCE");
        assert_eq!(v["excluded_chassis"], serde_json::json!(["SERVER", 999]));
        let unknown = Inventory::default();
        assert_eq!(
            serde_json::to_value(&unknown).unwrap()["chassis"],
            "UNKNOWN"
        );
        let future = Report {
            activity_rule: 77,
            ..Report::default()
        };
        assert_eq!(serde_json::to_value(&future).unwrap()["activity_rule"], 77);
        let measured = Report {
            measurements: vec![crate::v1::Measurement {
                energy_j: 1.0,
                source: EnergySource::AcpiPowerMeter as i32,
            }],
            ..Report::default()
        };
        assert_eq!(
            serde_json::to_value(&measured).unwrap()["measurements"][0]["source"],
            "ACPI_POWER_METER"
        );
    }
}
