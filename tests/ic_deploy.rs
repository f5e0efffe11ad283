//! The IC deploy simulation end to end (`examples/images/ic-deploy`, what
//! `make run` runs): the pipeline (pid0) creates root, stages the release
//! set, resumes root's bootstrap, and root creates the wasm_store and
//! installs every role from it. Then, against the same node kept serving:
//! `ww call root canic_wasm_store_overview`, and a redeploy with
//! `ww deploy` that upgrades only the role whose payload changed, keeping
//! its stable memory.

mod common;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

/// The release set, in the order the pipeline stages it (wasm_store first).
const ROLES: [&str; 10] = ["wasm_store", "app", "minimal", "scale", "scale_hub", "shard", "shard_hub", "test", "user_hub", "user_shard"];

fn image(name: &str) -> PathBuf {
    let dir = repo().join("examples/images").join(name);
    for needed in ["bin/main.wasm", "lib/release/root.wasm"] {
        let p = repo().join("examples/images/ic-deploy").join(needed);
        assert!(p.is_file(), "{} is missing: run `make test` (it assembles the example images first)", p.display());
    }
    dir
}

/// The canister id of `role` in the pipeline's summary table.
fn summary_id(log: &str, role: &str) -> String {
    log.lines()
        .filter(|l| !l.contains("Submitting"))
        .find_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != role);
            words.next()?;
            let id = words.next()?;
            id.ends_with("-cai").then(|| id.to_string())
        })
        .unwrap_or_else(|| panic!("no summary line for {role}:\n{log}"))
}

#[test]
fn ww_run_ic_deploy_stages_bootstraps_and_installs_every_role() {
    let (code, log) = run(&["run", image("ic-deploy").to_str().unwrap()]);
    assert_eq!(code, 0, "{log}");
    // Staged in order, wasm_store first, each with its size and chunk count.
    let mut at = 0;
    for role in ROLES {
        let line = format!("Submitting role '{role}' to root for wasm_store publication (");
        let pos = log[at..].find(&line).unwrap_or_else(|| panic!("no (or out of order) {line:?}:\n{log}"));
        at += pos;
        let rest = &log[at + line.len()..];
        let detail = &rest[..rest.find(')').expect("closing parenthesis")];
        assert!(detail.contains("KiB, 1 chunks"), "{role}: {detail}");
    }
    assert_contains(&log, "Resuming root bootstrap after full release set staging");
    assert_contains(&log, "Root bootstrap resumed and reached READY");
    // The overview in Candid text: one active store holding nine templates.
    assert_contains(&log, "canic_wasm_store_overview:");
    assert_contains(&log, "template_count = 9 : nat32");
    assert_contains(&log, "release_count = 9 : nat32");
    assert_contains(&log, "max_store_bytes = 40_000_000 : nat64");
    assert_contains(&log, "headroom_bytes = opt (4_000_000 : nat64)");
    assert_contains(&log, "generation = 1 : nat64");
    assert_contains(&log, "publication_slot = opt variant { Active }");
    // (The printer ends a record's last field with `;` only when it wraps.)
    let overview = normalize(&pipeline_overview(&log)).replace("; }", " }");
    for role in &ROLES[1..] {
        assert_contains(&overview, &format!("record {{ template_id = \"embedded:{role}\"; versions = 1 : nat16 }}"));
    }
    // The summary: every role has its own canister.
    let mut ids: Vec<String> = ROLES.iter().map(|r| summary_id(&log, r)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), ROLES.len(), "{log}");
    assert_contains(&log, "DEPLOY_OK roles=10 created=10 upgraded=0 skipped=0 published=9");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
}

/// A node that ran the ic-deploy image and keeps serving.
struct ServingDeploy {
    child: Child,
    state: tempfile::TempDir,
    log: String,
}

impl ServingDeploy {
    fn start() -> Self {
        let state = tempfile::tempdir().expect("tempdir");
        let mut child = ww()
            .args(["run", "--serve", "--state"])
            .arg(state.path())
            .arg(image("ic-deploy"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ww");
        let mut stderr = child.stderr.take().expect("stderr");
        let log = read_until(&mut stderr, "serving until", Duration::from_secs(120));
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child, state, log }
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = ww();
        cmd.args(args).arg("--state").arg(self.state.path()).stdin(Stdio::null());
        let out = cmd.output().expect("run ww");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn call_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "ww {args:?}: {err}");
        out
    }
}

impl Drop for ServingDeploy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

#[test]
fn overview_over_ww_call_then_redeploy_upgrades_only_the_changed_role() {
    let node = ServingDeploy::start();
    assert_contains(&node.log, "DEPLOY_OK roles=10 created=10");

    // The same overview through the control socket, typed by the Candid
    // interface root's module carries (`icp:public candid:service`).
    let overview = node.call_ok(&["call", "root", "canic_wasm_store_overview", "--query"]);
    let printed = pipeline_overview(&node.log);
    assert_eq!(normalize(&overview), normalize(&printed), "ww call:\n{overview}\npipeline:\n{printed}");

    // State in app's stable memory, to survive the upgrade.
    let app = summary_id(&node.log, "app");
    let minimal = summary_id(&node.log, "minimal");
    node.call_ok(&["call", &app, "set_setting", r#"("theme", "dark")"#]);
    let env_before = node.call_ok(&["call", &minimal, "canic_env", "--query"]);

    // Redeploy: the overlay bumps app to 0.1.1 with a new payload.
    let (code, _, log) = node.cli(&[
        "deploy",
        image("ic-deploy").to_str().unwrap(),
        image("ic-deploy-app-v2").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{log}");
    assert_contains(&log, "Submitting role 'app' to root for wasm_store publication");
    for role in ROLES.iter().filter(|r| **r != "app") {
        assert_contains(&log, &format!("Role '{role}' 0.1.0 already staged or published at root (unchanged)"));
    }
    assert_contains(&log, "DEPLOY_OK roles=10 created=0 upgraded=1 skipped=0 published=1");
    assert_eq!(summary_id(&log, "app"), app, "the upgrade keeps the canister");

    let app_did = repo().join("guests/canisters/app/app.did");
    let app_did = app_did.to_str().unwrap();
    // Typed by the interface the (upgraded) module carries.
    let env = node.call_ok(&["call", &app, "canic_env", "--query"]);
    assert!(env.contains("version = \"0.1.1\""), "{env}");
    assert!(env.contains("upgrades = 1 : nat32"), "{env}");
    let setting = node.call_ok(&["call", &app, "get_setting", r#"("theme")"#, "--query", "--candid", app_did]);
    assert!(setting.contains("\"dark\""), "stable memory kept across the upgrade: {setting}");
    // An untouched role was not reinstalled.
    assert_eq!(node.call_ok(&["call", &minimal, "canic_env", "--query"]), env_before);

    // The same release again changes nothing.
    let (code, _, log) = node.cli(&[
        "deploy",
        image("ic-deploy").to_str().unwrap(),
        image("ic-deploy-app-v2").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{log}");
    assert_contains(&log, "DEPLOY_OK roles=10 created=0 upgraded=0 skipped=0 published=0");
}

#[test]
fn ww_deploy_reports_bad_input_and_a_missing_node() {
    let state = tempfile::tempdir().expect("tempdir");
    let state_dir = state.path().to_str().unwrap();
    let (code, err) = run(&["deploy", "--state", state_dir, image("ic-deploy").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_contains(&err, "no node is serving at");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let node = ServingDeploy::start();
    let (code, _, err) = node.cli(&["deploy", "/no/such/layer"]);
    assert_eq!(code, 2, "{err}");
    assert_contains(&err, "/no/such/layer: cannot open image layer");
    // A layer without bin/main.wasm: the node names it and keeps serving.
    let empty = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = node.cli(&["deploy", empty.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_contains(&err, "bin/main.wasm");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    node.call_ok(&["call", "root", "canic_ready", "--query"]);
}

/// A release whose published checksum does not match its payload is refused
/// by root (the host hashes every chunk); a malformed checksum file is named.
#[test]
fn a_wrong_published_checksum_fails_the_deploy_cleanly() {
    let overlay = ImageDir::new();
    overlay.write("lib/release/app.wasm.sha256", format!("{}  app.wasm\n", "00".repeat(32)));
    let (code, log) = run(&["run", image("ic-deploy").to_str().unwrap(), overlay.path().to_str().unwrap()]);
    assert_ne!(code, 0, "{log}");
    assert_contains(&log, "canic_template_publish_chunk_admin");
    assert_contains(&log, &format!("prepared as {}", "00".repeat(32)));
    assert!(!log.contains("DEPLOY_OK"), "{log}");

    let overlay = ImageDir::new();
    overlay.write("lib/release/app.wasm.sha256", "not a hash\n");
    let (code, log) = run(&["run", image("ic-deploy").to_str().unwrap(), overlay.path().to_str().unwrap()]);
    assert_ne!(code, 0, "{log}");
    assert_contains(&log, "/lib/release/app.wasm.sha256: expected a SHA-256 in hex");
}
