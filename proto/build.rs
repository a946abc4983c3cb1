//! Generates the `veille.v1` messages and the `Telemetry` service without `protoc`:
//! `protox` compiles the .proto files to a descriptor set in pure Rust and tonic's build
//! crate turns it into code.

/// protobuf's `FieldDescriptorProto` type and label numbers (descriptor.proto).
const TYPE_ENUM: i32 = 14;
const LABEL_REPEATED: i32 = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=veille");
    let fds = protox::compile(["veille/v1/telemetry.proto"], ["."])?;
    // `veille-agent once --format json` and the collector's JSON output print the
    // messages field for field; enum fields by their names, not their numbers
    // (`veille_proto::json_enums`), found here from the descriptors so that a new enum
    // field needs nothing more.
    let mut builder =
        tonic_prost_build::configure().type_attribute(".", "#[derive(serde::Serialize)]");
    for file in &fds.file {
        let package = file.package();
        for message in &file.message_type {
            for field in &message.field {
                if field.r#type != Some(TYPE_ENUM) {
                    continue;
                }
                let kind = field.type_name().rsplit('.').next().unwrap_or_default();
                let with = if field.label == Some(LABEL_REPEATED) {
                    "names"
                } else {
                    "name"
                };
                builder = builder.field_attribute(
                    format!("{package}.{}.{}", message.name(), field.name()),
                    format!(
                        "#[serde(serialize_with = \"crate::json_enums::{with}::<crate::v1::{kind}, _>\")]"
                    ),
                );
            }
        }
    }
    builder.compile_fds(fds)?;
    Ok(())
}
