//! Compiles `proto/remotemedia/v1/sessions.proto` with protox (no `protoc` needed)
//! and generates the tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/remotemedia/v1/sessions.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".remotemedia.v1")
        .compile_fds(descriptors)?;
    Ok(())
}
