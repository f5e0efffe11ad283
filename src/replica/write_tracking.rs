//! Which pages of a canister heap were written since the last look, from
//! the kernel, at a cost proportional to the pages mapped rather than a
//! compare of every hot page.
//!
//! Mechanism (Linux 6.7 and later): the live heap range is registered with
//! a userfaultfd in *asynchronous write-protect* mode
//! (`UFFD_FEATURE_WP_ASYNC`). A first write to a protected page is resolved
//! by the kernel itself (no message, no thread of ours, no signal: Wasmtime's
//! own SIGSEGV handling is untouched) and the page loses its write-protect
//! bit. The `PAGEMAP_SCAN` ioctl on `/proc/self/pagemap` then reports exactly
//! the pages without the bit ("written"); [`WriteTracker::protect`]
//! (`UFFDIO_WRITEPROTECT`) sets it again. The memory layer decides which
//! written pages to protect again (see `memory`): protecting costs a fault
//! at the next write, so pages written in most executions stay unprotected.
//!
//! Only pages with a page-table entry (present or swapped) are asked for:
//! the kernel counts an untouched hole as "written", and protecting holes
//! would fill the page tables of the whole heap with markers that every
//! later scan walks. A hole that gets written becomes a present page without
//! the bit, so it is reported; a hole that is first *read* comes in without
//! the bit too and is reported once (a harmless false positive: its bytes
//! are the committed ones). A written page is never missed.
//!
//! The userfaultfd is created with `UFFD_USER_MODE_ONLY`, which an
//! unprivileged process may do whatever `vm.unprivileged_userfaultfd` says.
//! [`tracker`] probes all of this once, on a mapping shaped like a canister
//! heap, and says why when it cannot be used; the memory layer then falls
//! back to comparing pages (see `memory`).
//!
//! The kernel ABI is declared here by hand: neither `libc` nor the
//! `userfaultfd` crate knows `UFFD_FEATURE_WP_ASYNC` or `PAGEMAP_SCAN`.

use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

const UFFD_API: u64 = 0xAA;
const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;

const fn iowr(ty: u64, nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | (ty << 8) | nr
}

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

/// `struct pm_scan_arg` of `linux/fs.h`.
#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// `struct page_region` of `linux/fs.h`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

const UFFDIO_API: u64 = iowr(0xAA, 0x3F, std::mem::size_of::<UffdioApi>());
const UFFDIO_REGISTER: u64 = iowr(0xAA, 0x00, std::mem::size_of::<UffdioRegister>());
const UFFDIO_WRITEPROTECT: u64 = iowr(0xAA, 0x06, std::mem::size_of::<UffdioWriteprotect>());
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
const PAGEMAP_SCAN: u64 = iowr(b'f' as u64, 16, std::mem::size_of::<PmScanArg>());
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
const PAGE_IS_WRITTEN: u64 = 1 << 1;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;

/// Regions returned per `PAGEMAP_SCAN` call; more are fetched by looping.
const SCAN_REGIONS: usize = 64;

/// The process-wide userfaultfd and the pagemap file scans go through.
pub struct WriteTracker {
    uffd: OwnedFd,
    pagemap: std::fs::File,
}

/// The tracker, probed once per process; `Err` says why it cannot be used.
pub fn tracker() -> Result<&'static WriteTracker, &'static str> {
    static TRACKER: OnceLock<Result<WriteTracker, String>> = OnceLock::new();
    TRACKER
        .get_or_init(|| WriteTracker::open().and_then(|t| t.self_test().map(|()| t)))
        .as_ref()
        .map_err(String::as_str)
}

impl WriteTracker {
    fn open() -> Result<Self, String> {
        // SAFETY: a plain syscall; the result is checked.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_userfaultfd,
                libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY,
            )
        };
        if fd < 0 {
            return Err(format!("userfaultfd: {}", io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let uffd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_WP_ASYNC,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API with a properly sized, initialized argument.
        if unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_API as _, &mut api) } < 0 {
            return Err(format!(
                "userfaultfd asynchronous write-protect (Linux 6.7+): {}",
                io::Error::last_os_error()
            ));
        }
        let pagemap = std::fs::File::open("/proc/self/pagemap").map_err(|e| format!("/proc/self/pagemap: {e}"))?;
        Ok(Self { uffd, pagemap })
    }

    /// Registers `[addr, addr + len)` (whole mapped pages) for tracking.
    /// Every new mapping of that range (`MAP_FIXED`) needs it again.
    pub fn register(&self, addr: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let mut reg = UffdioRegister {
            range: UffdioRange {
                start: addr as u64,
                len: len as u64,
            },
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER with a properly sized argument; the range
        // is the caller's own mapping.
        if unsafe { libc::ioctl(self.uffd.as_raw_fd(), UFFDIO_REGISTER as _, &mut reg) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Write-protects `[addr, addr + len)` again (whole pages): the next
    /// write to one of them makes it "written".
    pub fn protect(&self, addr: usize, len: usize) -> io::Result<()> {
        let mut wp = UffdioWriteprotect {
            range: UffdioRange {
                start: addr as u64,
                len: len as u64,
            },
            mode: UFFDIO_WRITEPROTECT_MODE_WP,
        };
        // SAFETY: UFFDIO_WRITEPROTECT with a properly sized argument on a
        // registered range of the caller's own mapping.
        if unsafe { libc::ioctl(self.uffd.as_raw_fd(), UFFDIO_WRITEPROTECT as _, &mut wp) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Calls `each` with every run of pages of `[addr, addr + len)` that is
    /// not write-protected (written since it was last protected, or never
    /// protected), as address ranges. Holes (pages never touched) are not
    /// reported.
    pub fn written(&self, addr: usize, len: usize, mut each: impl FnMut(Range<usize>)) -> io::Result<()> {
        let end = (addr + len) as u64;
        let mut start = addr as u64;
        let mut regions = [PageRegion::default(); SCAN_REGIONS];
        while start < end {
            let mut arg = PmScanArg {
                size: std::mem::size_of::<PmScanArg>() as u64,
                flags: PM_SCAN_CHECK_WPASYNC,
                start,
                end,
                vec: regions.as_mut_ptr() as u64,
                vec_len: SCAN_REGIONS as u64,
                category_mask: PAGE_IS_WRITTEN,
                category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                return_mask: PAGE_IS_WRITTEN,
                ..PmScanArg::default()
            };
            // SAFETY: PAGEMAP_SCAN with a properly sized argument whose
            // output vector has `vec_len` entries.
            let n = unsafe { libc::ioctl(self.pagemap.as_raw_fd(), PAGEMAP_SCAN as _, &mut arg) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            for r in &regions[..n as usize] {
                each(r.start as usize..r.end as usize);
            }
            if arg.walk_end <= start {
                break;
            }
            start = arg.walk_end;
        }
        Ok(())
    }

    /// Checks the whole mechanism on a mapping shaped like a canister heap
    /// (a private mapping of a memfd): a write is reported until protected
    /// again, a protected page is not, and a write after that is.
    fn self_test(&self) -> Result<(), String> {
        const PAGES: usize = 4;
        let page = super::memory::PAGE;
        let len = PAGES * page;
        // SAFETY: a private memfd mapping of our own, unmapped below.
        let base = unsafe {
            let fd = libc::memfd_create(c"ww-probe".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return Err(format!("memfd_create: {}", io::Error::last_os_error()));
            }
            let fd = OwnedFd::from_raw_fd(fd);
            if libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) < 0 {
                return Err(format!("ftruncate: {}", io::Error::last_os_error()));
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                fd.as_raw_fd(),
                0,
            );
            if p == libc::MAP_FAILED {
                return Err(format!("mmap: {}", io::Error::last_os_error()));
            }
            p.cast::<u8>()
        };
        let result = (|| {
            self.register(base as usize, len).map_err(|e| format!("register: {e}"))?;
            let written = |t: &Self| -> Result<Vec<usize>, String> {
                let mut pages = Vec::new();
                t.written(base as usize, len, |r| pages.extend(r.step_by(page).map(|a| (a - base as usize) / page)))
                    .map_err(|e| format!("PAGEMAP_SCAN (Linux 6.7+): {e}"))?;
                Ok(pages)
            };
            let protect_all = |t: &Self| t.protect(base as usize, len).map_err(|e| format!("UFFDIO_WRITEPROTECT: {e}"));
            // SAFETY: inside our mapping.
            unsafe {
                base.add(page).write_volatile(1);
                base.add(3 * page).read_volatile();
            }
            let first = written(self)?;
            if !first.contains(&1) || first.contains(&0) || first.contains(&2) {
                return Err(format!("the first scan should report page 1 (and maybe the page read), got {first:?}"));
            }
            protect_all(self)?;
            if !written(self)?.is_empty() {
                return Err("protected pages were reported".into());
            }
            // SAFETY: inside our mapping.
            unsafe { base.add(2 * page).write_volatile(2) };
            match written(self)?.as_slice() {
                [2] => Ok(()),
                other => Err(format!("a write after protecting was reported as {other:?}")),
            }
        })();
        // SAFETY: our own mapping.
        unsafe { libc::munmap(base.cast(), len) };
        result
    }
}
