//! Boxing a future without first building it on the stack.
//!
//! `Box::pin(fut)` builds `fut` in the caller's frame and then copies all of it, every byte of
//! its largest state, into the allocation: for the per-request futures of the hot path (2 KiB
//! and more) that copy was a tenth of the user-space time of a call. Allocating first and
//! building the value straight into the allocation lets the compiler drop the copy.
//!
//! Owns: that one allocation order. Must never: be needed for correctness (it is
//! `Box::pin` in effect; only where the bytes are written differs).

use std::pin::Pin;

/// `Box::pin(make())`, with the box allocated before `make` runs so the value can be written
/// into it directly.
#[inline(always)]
pub fn boxed<F>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    let mut slot = Box::<F>::new_uninit();
    slot.write(make());
    // SAFETY: the line above initialised the whole value.
    Box::into_pin(unsafe { slot.assume_init() })
}
