//! Reliability soaks: no hangs, ever. These would catch a lost wakeup in the
//! guest loop (a request queued just before the guest blocks, never flushed)
//! or a stalled pipe: every boot and every call has a deadline.

mod common;

use common::*;

/// 1,000 consecutive boots of the echo image, each with a hang deadline.
#[test]
fn thousand_boots_of_the_echo_image() {
    let image = repo().join("examples/images/echo");
    guest("pid0");
    for i in 0..1000 {
        let (code, stderr) = run(&["run", image.to_str().unwrap()]);
        assert_eq!(code, 0, "boot {i} failed:\n{stderr}");
        assert!(stderr.contains("CHILD_OK"), "boot {i} lost CHILD_OK:\n{stderr}");
    }
}

/// A million pipelined echo calls (256 in flight) without a stall; every
/// answer is checked. The guest reports progress every 100,000 calls; a gap
/// of more than [`STALL`] between reports is a stall (the whole run may take
/// longer on a loaded machine, but it must keep moving).
#[test]
fn million_pipelined_echoes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;
    const STALL: Duration = Duration::from_secs(30);

    let img = ImageDir::testkit();
    let mut child = ww()
        .args(["run", img.path().to_str().unwrap(), "--", "echo-pipelined", "1000000", "256"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(STALL) {
            Ok(line) => {
                let done = line.contains("PIPELINED_OK");
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("stalled: no progress for {STALL:?}; so far:\n{}", seen.join("\n"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().unwrap();
    let all = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{all}");
    assert_contains(&all, "PROGRESS 900000");
    assert_contains(&all, "PIPELINED_OK n=1000000");
}
