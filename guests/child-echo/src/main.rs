//! A child that makes two concurrent `echo` calls back to the host over its
//! own stdio session, and prints CHILD_OK when both answers are right.

fn main() {
    let code = ww_guest::run(|membrane| async move {
        let session = membrane.graft().await?;
        let (a, b) = futures::join!(session.echo("ping one"), session.echo("ping two"));
        let (a, b) = (a?, b?);
        if a != "ping one" || b != "ping two" {
            return Err(capnp::Error::failed(format!("wrong echo answers: {a:?}, {b:?}")));
        }
        eprintln!("CHILD_OK");
        Ok::<(), capnp::Error>(())
    });
    ww_guest::exit(code);
}
