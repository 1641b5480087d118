//! Boxing a future without first building it on the stack.
//!
//! `Box::pin(fut)` builds `fut` in the caller's frame and then copies all of it, every byte of
//! its largest state, into the allocation: for the two futures boxed per call (the request
//! handler and the upstream call, ~2 KiB each) that was two cold 2 KiB copies per call, a third
//! of its `memcpy`. Allocating first and building the value straight into the allocation lets
//! the compiler drop the copy.
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
