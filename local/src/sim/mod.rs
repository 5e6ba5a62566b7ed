//! Built-in simulators of the four upstreams, so every flow works offline. Each is mounted under
//! `/sim/<name>` and supplies the configuration defaults that point its connector at it.

pub mod acc;
pub mod claiming;
pub mod hicaps;
pub mod icare;
