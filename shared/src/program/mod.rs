//! The program's side of the HICAPS Program API: queued work, invoice records, the benefit
//! schedule and member registry, and adjudication.

pub mod adjudication;
pub mod inspect;
pub mod records;
pub mod reference;
pub mod replay;
pub mod work;
