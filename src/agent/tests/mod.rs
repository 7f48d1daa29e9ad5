//! Unit tests of the agent's logic (compiled from the same files as the agent binary) and of
//! what the host gives it.

mod archive;
mod args;
mod glob;
mod split;
mod subst;
mod timings;
