//! [`ManualReply`]: the return type of a `manual_reply = true` method, so the
//! method replies (or rejects) itself while its Candid interface still names
//! the type it replies with.
//!
//! ```ignore
//! #[update(manual_reply = true)]
//! async fn create(name: String) -> ManualReply<Principal> {
//!     match make(&name).await {
//!         Ok(id) => ManualReply::one(id),
//!         // A reject, not an `Err` reply: a caller's intent aborts.
//!         Err(e) => ManualReply::reject(format!("cannot create {name}: {e}")),
//!     }
//! }
//! ```

use std::marker::PhantomData;

use candid::types::{Serializer, Type};
use candid::{CandidType, Encode};

use crate::api;

/// What a `manual_reply` method returns once it has replied or rejected.
/// It carries no value: the reply is already sent. Its Candid type is `T`'s.
pub struct ManualReply<T: ?Sized>(PhantomData<T>);

impl<T: CandidType> ManualReply<T> {
    /// Replies with `value`, Candid-encoded.
    pub fn one(value: T) -> Self {
        match Encode!(&value) {
            Ok(bytes) => api::msg_reply(bytes),
            Err(e) => api::trap(format!("encoding the reply: {e}")),
        }
        Self(PhantomData)
    }

    /// Rejects the call with `message` (reject code CANISTER_REJECT).
    pub fn reject(message: impl AsRef<str>) -> Self {
        api::msg_reject(message);
        Self(PhantomData)
    }
}

impl<T: CandidType + ?Sized> CandidType for ManualReply<T> {
    fn _ty() -> Type {
        T::_ty()
    }

    /// Never called: a `manual_reply` method's return value is dropped.
    fn idl_serialize<S: Serializer>(&self, _serializer: S) -> Result<(), S::Error> {
        Err(serde::ser::Error::custom("a ManualReply was already sent; it has no value to encode"))
    }
}
