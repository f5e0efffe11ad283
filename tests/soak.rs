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
/// answer is checked.
#[test]
fn million_pipelined_echoes() {
    let img = ImageDir::testkit();
    let (code, stderr) = run_image(img.path(), &["echo-pipelined", "1000000", "256"]);
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, "PIPELINED_OK n=1000000");
}
