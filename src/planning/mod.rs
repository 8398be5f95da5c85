//! Shelter planning: who is covered by the shelters today, who is not,
//! and where the next shelters should go, by the Chinese standards and
//! away from the hazards.

pub mod solve;
