//! Layer 0, `util`: small tools with no knowledge of HTTP, config or members.
//!
//! Owns: per-thread recycling of heap blocks ([`recycle`]), cheap clocks and calendar
//! arithmetic ([`clock`]), read deadlines that move with the data ([`deadline`]), the bound
//! on one wait for a peer ([`stall`]), HTML escaping ([`html`]).
//!
//! May import: nothing of the crate (see `tests/layering.rs`).

pub mod clock;
pub mod deadline;
pub mod html;
pub mod recycle;
pub mod stall;
