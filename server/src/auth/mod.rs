//! Authentication and authorization: JWT verification with one pinned algorithm, token
//! minting for operators and tests, and per-room, per-action access rules.
//!
//! Tokens say only who someone is (`sub`); what they may do comes from the programme in the
//! store, so a change of membership applies at the next request that reads it.

pub mod access;
pub mod grants;
pub mod jwt;

pub use access::{Access, access_to};
pub use grants::{GrantError, GrantSettings, Grants};
pub use jwt::{AuthError, Claims, TokenMinter, TokenVerifier, Verified};
