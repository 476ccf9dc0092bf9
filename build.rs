//! Compiles `proto/egress.proto` with protox (pure Rust), so no `protoc` is needed to build.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/egress.proto");
    let fds = protox::compile(["proto/egress.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
