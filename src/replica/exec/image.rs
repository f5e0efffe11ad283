//! An instance's committed state as plain values, and an instance made
//! from them: what a canister snapshot holds of a running canister (its
//! heap, its stable memory and a core module's mutable globals).
//!
//! Capturing reads the committed state only (between executions nothing
//! else exists). Restoring instantiates the code on a heap loaded with the
//! captured bytes, then throws away what instantiation wrote (data
//! segments, `(start)`, constructors) and sets the globals, so the instance
//! is exactly the captured one.

use std::sync::Arc;

use wasmtime::Val;

use super::{CanisterInstance, CanisterRuntime, Code, Front, InstallError};
use crate::replica::memory::ChangedBlocks;
use crate::replica::stable::{ChangedPages, StableMemory};

/// The committed state of an instance.
#[derive(Clone)]
pub struct InstanceImage {
    /// The heap, committed bytes (shared: loading copies it into a memfd).
    pub heap: Arc<[u8]>,
    /// Stable memory (shared: loading copies it).
    pub stable: Arc<StableMemory>,
    /// A core module's mutable globals (a component has none kept).
    pub globals: Vec<Val>,
}

impl InstanceImage {
    /// Bytes the image occupies (heap and stable memory).
    pub fn size(&self) -> u64 {
        self.heap.len() as u64 + self.stable.size_bytes()
    }
}

impl CanisterInstance {
    /// Feeds the committed heap and stable memory to `hash`, in place.
    pub fn hash_committed(&self, hash: &mut blake3::Hasher) {
        self.memory.hash_committed(hash);
        self.store.data().stable.hash_committed(hash);
    }

    /// The committed state, copied.
    pub fn image(&self) -> InstanceImage {
        InstanceImage {
            heap: self.memory.committed_bytes().into(),
            stable: Arc::new(self.store.data().stable.committed_copy()),
            globals: match &self.front {
                Front::Core(c) => c.committed_globals().to_vec(),
                Front::Component(_) => Vec::new(),
            },
        }
    }

    /// The committed heap blocks and stable memory pages changed since
    /// the last call, and the globals: what a state directory's cut takes
    /// of the instance (call between executions).
    pub fn take_changes(&mut self) -> (ChangedBlocks, ChangedPages, Vec<Val>) {
        let heap = self.memory.take_changed_blocks();
        let stable = self.store.data_mut().stable.take_changed_pages();
        let globals = match &self.front {
            Front::Core(c) => c.committed_globals().to_vec(),
            Front::Component(_) => Vec::new(),
        };
        (heap, stable, globals)
    }

    /// Marks the instance as stored as it is (just restored from a state
    /// directory): the next cut takes only what changes from here.
    pub fn mark_stored(&mut self) {
        self.memory.mark_stored();
        self.store.data_mut().stable.mark_stored();
    }

    /// An instance of `code` in exactly the state `image` captured. Runs no
    /// canister code but what instantiation runs, whose writes are undone.
    ///
    /// The instance is made on a fresh heap first (a component lists its
    /// methods there, as at install: its constructors must not run again
    /// on a heap where they already ran), then rebuilt on the loaded heap.
    pub fn from_image(runtime: &CanisterRuntime, code: &Code, image: &InstanceImage, name: &str) -> Result<Self, InstallError> {
        let heap = runtime.new_heap()?;
        heap.load_committed(&image.heap)?;
        let mut instance = Self::new(runtime, code, StableMemory::default(), name)?;
        instance.memory = heap;
        instance
            .restore_after_discard(true)
            .map_err(|e| InstallError::Invalid(format!("restoring the snapshot's heap: {e}")))?;
        if let Front::Core(c) = &mut instance.front {
            c.load_globals(&mut instance.store, &image.globals).map_err(InstallError::Invalid)?;
        } else if !image.globals.is_empty() {
            return Err(InstallError::Invalid("the snapshot holds globals a component cannot take".into()));
        }
        // The canister's stored stable memory is not this one: the next
        // cut of a state directory must take all of it.
        let mut stable = StableMemory::clone(&image.stable);
        stable.mark_unstored();
        instance.put_stable(stable);
        Ok(instance)
    }
}
