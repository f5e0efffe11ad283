//! pid0 of the `echo` example image: spawns the child in `/lib/child-echo.wasm`
//! through its session's Executor and waits for it.

fn main() {
    let code = ww_guest::run(|membrane| async move {
        let session = membrane.graft().await?;
        eprintln!("pid0: session granted in epoch {}", session.epoch);
        let wasm = std::fs::read("/lib/child-echo.wasm")
            .map_err(|e| capnp::Error::failed(format!("/lib/child-echo.wasm: {e}")))?;
        let child = session.spawn(&wasm).name("child-echo").start().await?;
        let code = child.wait().await?;
        eprintln!("pid0: child-echo exited with {code}");
        if code != 0 {
            return Err(capnp::Error::failed(format!("child-echo failed with exit code {code}")));
        }
        Ok::<(), capnp::Error>(())
    });
    ww_guest::exit(code);
}
