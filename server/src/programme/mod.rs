//! The programme: regions, people, trios and the rooms they imply. A roster (TOML) is
//! validated as a whole, every problem reported with its line and field, then turned into
//! the [`Programme`](crate::store::Programme) the store keeps.

pub mod admin;
pub mod cache;
pub mod edit;
pub mod model;
pub mod pins;
pub mod roster;

pub use model::{Cycle, Preferences, Region};
pub use roster::{Problem, Roster, RosterError};

/// The demo programme: three regions, two trios, one moderator, one coordinator.
pub const DEMO_ROSTER: &str = include_str!("../../demo-roster.toml");

/// The id of the programme-wide room.
pub const COMMONS: &str = "commons";

/// The id of the moderators' and coordinator's room.
pub const STAFF: &str = "staff";
