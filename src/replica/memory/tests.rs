//! Commit and rollback, with every heap mechanism this host has.

use super::*;

/// Every mechanism this host has: each test runs on all of them.
fn mechanisms() -> Vec<HeapTracking> {
    let mut all = vec![HeapTracking::Compare];
    match write_tracking::tracker() {
        Ok(_) => all.push(HeapTracking::Written),
        Err(why) => eprintln!("write tracking not tested here: {why}"),
    }
    all
}

fn memory(capacity: usize, guard: usize, tracking: HeapTracking) -> CanisterMemory {
    CanisterMemory::with_tracking(capacity, guard, tracking).unwrap()
}

fn write(m: &CanisterMemory, at: usize, bytes: &[u8]) {
    let st = m.lock();
    assert!(at + bytes.len() <= st.size);
    // SAFETY: inside the live range.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), st.base.add(at), bytes.len()) };
}

fn read(m: &CanisterMemory, at: usize, len: usize) -> Vec<u8> {
    let st = m.lock();
    // SAFETY: inside the live range.
    unsafe { std::slice::from_raw_parts(st.base.add(at), len).to_vec() }
}

#[test]
fn commit_keeps_and_rollback_discards() {
    for t in mechanisms() {
        let m = memory(64 << 20, 1 << 20, t);
        m.lock().grow_to(4 << 20).unwrap();
        write(&m, 100, b"committed");
        let stats = m.commit().unwrap();
        assert_eq!(stats.dirty_pages, 1, "{t:?}");
        write(&m, 100, b"scratched");
        write(&m, 3 << 20, b"far away");
        assert_eq!(read(&m, 100, 9), b"scratched");
        m.rollback().unwrap();
        assert_eq!(read(&m, 100, 9), b"committed", "{t:?}");
        assert_eq!(read(&m, 3 << 20, 8), vec![0; 8], "{t:?}");
        // Written again after the rollback: tracked again.
        write(&m, 100, b"second!!!");
        m.commit().unwrap();
        m.rollback().unwrap();
        assert_eq!(read(&m, 100, 9), b"second!!!", "{t:?}");
    }
}

#[test]
fn growth_is_rolled_back_and_regrows_zeroed() {
    for t in mechanisms() {
        let m = memory(64 << 20, 1 << 20, t);
        m.lock().grow_to(1 << 20).unwrap();
        m.commit().unwrap();
        m.lock().grow_to(8 << 20).unwrap();
        write(&m, 5 << 20, b"grown");
        m.rollback().unwrap();
        assert_eq!(m.size(), 1 << 20);
        m.lock().grow_to(8 << 20).unwrap();
        assert_eq!(read(&m, 5 << 20, 5), vec![0; 5], "{t:?}");
        // The regrown range is tracked like the rest.
        write(&m, 6 << 20, b"kept");
        m.commit().unwrap();
        m.rollback().unwrap();
        assert_eq!(read(&m, 6 << 20, 4), b"kept", "{t:?}");
    }
}

#[test]
fn written_pages_are_exactly_what_a_commit_copies_whatever_the_hot_set() {
    if write_tracking::tracker().is_err() {
        eprintln!("write tracking not available; nothing to test");
        return;
    }
    let m = memory(16 << 20, 1 << 20, HeapTracking::Written);
    m.lock().grow_to(8 << 20).unwrap();
    for page in 0..1200 {
        write(&m, page * PAGE, &[1]);
    }
    assert_eq!(m.commit().unwrap().dirty_pages, 1200);
    for round in 0..5u8 {
        for page in [3, 700, 1100] {
            write(&m, page * PAGE + 9, &[round + 1]);
        }
        // Reads of untouched and hot pages are not writes.
        read(&m, 1500 * PAGE, 1);
        read(&m, 10 * PAGE, 1);
        let stats = m.commit().unwrap();
        assert!(stats.dirty_pages == 3 || (round == 0 && stats.dirty_pages == 4), "{stats:?}");
    }
    assert_eq!(m.commit().unwrap().dirty_pages, 0);
    write(&m, 700 * PAGE + 9, &[99]);
    m.rollback().unwrap();
    assert_eq!(read(&m, 700 * PAGE + 9, 1), [5]);
    // Pages unchanged for long enough are protected again: the scan
    // stops reporting them, and a write to one is seen again.
    for _ in 0..=COLD_AFTER_COMMITS + 1 {
        m.commit().unwrap();
    }
    assert_eq!(m.commit().unwrap().private_pages, 0, "every page went cold");
    write(&m, 42 * PAGE, &[7]);
    assert_eq!(m.commit().unwrap().dirty_pages, 1);
    write(&m, 42 * PAGE, &[8]);
    m.rollback().unwrap();
    assert_eq!(read(&m, 42 * PAGE, 1), [7], "a hot page changed and rolled back");
    assert_eq!(read(&m, 3 * PAGE + 9, 1), [5], "an unchanged page kept");
}

#[test]
fn a_loaded_heap_rolls_back_to_what_was_loaded() {
    for t in mechanisms() {
        let m = memory(8 << 20, 1 << 20, t);
        let image: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
        m.load_committed(&image).unwrap();
        assert_eq!(m.committed_bytes(), image);
        write(&m, 5, b"scribble");
        m.rollback().unwrap();
        assert_eq!(read(&m, 0, 1 << 20), image, "{t:?}");
        write(&m, 5, b"kept");
        m.commit().unwrap();
        assert_eq!(&m.committed_bytes()[5..9], b"kept", "{t:?}");
    }
}

#[test]
fn unchanged_hot_pages_are_not_rewritten_and_go_cold() {
    let m = memory(8 << 20, 1 << 20, HeapTracking::Compare);
    m.lock().grow_to(1 << 20).unwrap();
    write(&m, 0, b"x");
    assert_eq!(m.commit().unwrap().dirty_pages, 1);
    for _ in 0..COLD_AFTER_COMMITS {
        assert_eq!(m.commit().unwrap().dirty_pages, 0);
    }
    assert_eq!(m.commit().unwrap().private_pages, 0, "went back to the memfd");
    assert_eq!(read(&m, 0, 1), b"x");
}

#[test]
fn cannot_grow_past_capacity() {
    for t in mechanisms() {
        let m = memory(1 << 20, 0, t);
        assert!(m.lock().grow_to(2 << 20).is_err());
    }
}

#[test]
fn the_state_directory_takes_exactly_the_pages_committed_since_the_last_cut() {
    for t in mechanisms() {
        let m = memory(64 << 20, 1 << 20, t);
        m.lock().grow_to(1 << 20).unwrap();
        write(&m, 5 * PAGE + 1, b"first");
        m.commit().unwrap();
        // Never taken: everything, zero pages left out.
        let all = m.take_changed_blocks();
        assert!(all.all, "{t:?}");
        assert_eq!(all.blocks.iter().map(|(b, _)| *b).collect::<Vec<_>>(), vec![5], "{t:?}");
        // A rolled-back write is not a change; a committed one is.
        write(&m, 9 * PAGE, b"scratch");
        m.rollback().unwrap();
        write(&m, 7 * PAGE + 3, b"second");
        m.commit().unwrap();
        let changed = m.take_changed_blocks();
        assert!(!changed.all, "{t:?}");
        assert_eq!(changed.blocks.len(), 1, "{t:?}");
        assert_eq!(changed.blocks[0].0, 7, "{t:?}");
        assert_eq!(&changed.blocks[0].1[3..9], b"second", "{t:?}");
        assert_eq!(changed.size, 1 << 20, "{t:?}");
        assert!(m.take_changed_blocks().blocks.is_empty(), "{t:?}: taken twice");
    }
}
