//! agent-auth (work in progress skeleton).

#[cfg(feature = "issuer")]
pub mod issuer;
