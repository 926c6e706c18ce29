//! agent-auth (work in progress skeleton).
