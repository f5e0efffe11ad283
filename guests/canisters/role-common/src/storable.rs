//! [`Candid`]: stable-structure values kept in their Candid encoding.

use std::borrow::Cow;
use ww_cdk::candid::{self, CandidType};
use ww_cdk::ic_stable_structures::Storable;
use ww_cdk::ic_stable_structures::storable::Bound;

/// A value stored in stable memory as its Candid encoding (unbounded), so
/// records can gain `opt` fields in later versions and still decode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candid<T>(pub T);

impl<T> Storable for Candid<T>
where
    T: CandidType + for<'de> serde::Deserialize<'de>,
{
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.encode())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.encode()
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        match candid::decode_one(&bytes) {
            Ok(value) => Self(value),
            // Only this canister writes stable memory: a failure is a bug
            // (or an incompatible upgrade), and trapping keeps the old state.
            Err(e) => ww_cdk::api::trap(format!(
                "stable memory holds a value that does not decode as {}: {e}",
                std::any::type_name::<T>()
            )),
        }
    }

    const BOUND: Bound = Bound::Unbounded;
}

impl<T: CandidType> Candid<T> {
    fn encode(&self) -> Vec<u8> {
        match candid::encode_one(&self.0) {
            Ok(bytes) => bytes,
            Err(e) => ww_cdk::api::trap(format!(
                "cannot encode {} for stable memory: {e}",
                std::any::type_name::<T>()
            )),
        }
    }
}
