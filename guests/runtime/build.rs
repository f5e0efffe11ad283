//! Compiles the node's capability schema (`capnp/ww.capnp` at the repo root).
fn main() {
    println!("cargo:rerun-if-changed=../../capnp");
    if let Err(e) = capnpc::CompilerCommand::new()
        .src_prefix("../../capnp")
        .file("../../capnp/ww.capnp")
        .run()
    {
        eprintln!("error: compiling capnp/ww.capnp failed: {e} (install `capnproto`: `make deps`)");
        std::process::exit(1);
    }
}
