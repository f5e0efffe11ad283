//! Compiles the Cap'n Proto schemas in `capnp/` (needs the `capnp` tool;
//! `make deps` installs Debian's `capnproto`).
fn main() {
    println!("cargo:rerun-if-changed=capnp");
    if let Err(e) = capnpc::CompilerCommand::new()
        .src_prefix("capnp")
        .file("capnp/ww.capnp")
        .run()
    {
        eprintln!("error: compiling capnp/ww.capnp failed: {e}");
        eprintln!("hint: install the Cap'n Proto compiler (`make deps`, or `apt-get install capnproto`)");
        std::process::exit(1);
    }
}
