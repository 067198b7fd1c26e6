//! The call agent.
