//! Generates the `veille.v1` messages and the `Telemetry` service without `protoc`:
//! `protox` compiles the .proto files to a descriptor set in pure Rust and tonic's build
//! crate turns it into code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=veille");
    let fds = protox::compile(["veille/v1/telemetry.proto"], ["."])?;
    tonic_prost_build::configure()
        // `veille-agent once --format json` and the collector's JSON output print the
        // messages as they are on the wire.
        .type_attribute(".", "#[derive(serde::Serialize)]")
        .compile_fds(fds)?;
    Ok(())
}
