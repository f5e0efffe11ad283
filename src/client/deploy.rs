//! `ww deploy`: runs a deployment image on a serving node
//! (`Admin.runImage`) and prints its log lines as they come.

use anyhow::Context;
use ww::ww_capnp::line_sink;

use super::UsageError;
use crate::DeployArgs;

/// Prints the log lines a node streams back (`ww deploy`).
struct StderrLines;

impl line_sink::Server for StderrLines {
    async fn line(
        self: capnp::capability::Rc<Self>,
        params: line_sink::LineParams,
        _: line_sink::LineResults,
    ) -> Result<(), capnp::Error> {
        use std::io::Write;
        let text = params.get()?.get_text()?.to_str()?;
        // A closed stderr loses the line, never the deploy.
        let _ = writeln!(std::io::stderr().lock(), "{text}");
        Ok(())
    }
}

/// `ww deploy`: asks the node to run the image (`Admin.runImage`) and prints
/// its log lines as they come.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<i32> {
    let mut layers = Vec::with_capacity(args.images.len());
    for image in &args.images {
        let path = std::fs::canonicalize(image)
            .map_err(|e| UsageError(format!("{}: cannot open image layer: {e}", image.display())))?;
        if !path.is_dir() {
            return Err(UsageError(format!("{}: an image layer must be a directory", image.display())).into());
        }
        let text = path
            .to_str()
            .ok_or_else(|| UsageError(format!("{}: the path is not UTF-8", image.display())))?
            .to_string();
        layers.push(text);
    }
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let (admin, rpc) = ww::control::connect(&args.state).await?;
            let disconnector = rpc.get_disconnector();
            tokio::task::spawn_local(rpc);
            let mut req = admin.run_image_request();
            {
                let mut p = req.get();
                let mut list = p.reborrow().init_layers(layers.len() as u32);
                for (i, l) in layers.iter().enumerate() {
                    list.set(i as u32, l.as_str());
                }
                let mut list = p.reborrow().init_args(args.args.len() as u32);
                for (i, a) in args.args.iter().enumerate() {
                    list.set(i as u32, a.as_str());
                }
                p.set_log(capnp_rpc::new_client(StderrLines));
            }
            let resp = req.send().promise.await.context("running the image on the node")?;
            let resp = resp.get()?;
            let error = resp.get_error()?.to_str()?;
            let out = if error.is_empty() {
                Ok(resp.get_exit_code())
            } else {
                Err(UsageError(error.to_string()).into())
            };
            let _ = disconnector.await;
            out
        })
        .await
}
