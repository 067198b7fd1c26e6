//! The messages the generator sends: a stamp (sender, its counter, the intended send time)
//! at the front of a body padded to [`BODY_BYTES`]. Receivers read the stamp back from the
//! delivered body, so every server carries it unchanged, whatever its framing.

/// The size of each chat message body, in bytes.
pub const BODY_BYTES: usize = 100;

/// Who sent a message, its number in that sender's sequence, and when it was meant to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sending connection's index in the run.
    pub sender: u32,
    /// The sender's counter, from 0, without gaps.
    pub n: u64,
    /// The intended send time, ns on [`crate::clock`] (latency is measured from it, not
    /// from when the message actually left: no coordinated omission).
    pub t: u64,
}

impl Stamp {
    /// The message id: `<sender>-<n>-<t>` (printable ASCII, under 64 bytes).
    pub fn id(&self) -> String {
        format!("{}-{}-{}", self.sender, self.n, self.t)
    }

    /// The body: the id, a space, then padding to [`BODY_BYTES`].
    pub fn body(&self) -> String {
        let mut body = self.id();
        body.push(' ');
        while body.len() < BODY_BYTES {
            body.push('x');
        }
        body
    }

    /// Reads a stamp from an id or from the front of a body.
    pub fn parse(text: &str) -> Option<Self> {
        let id = text.split(' ').next()?;
        let mut parts = id.splitn(3, '-');
        Some(Self {
            sender: parts.next()?.parse().ok()?,
            n: parts.next()?.parse().ok()?,
            t: parts.next()?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stamp = Stamp {
            sender: 17,
            n: 4,
            t: 123_456_789,
        };
        let body = stamp.body();
        assert_eq!(body.len(), BODY_BYTES);
        assert_eq!(Stamp::parse(&body), Some(stamp));
        assert_eq!(Stamp::parse(&stamp.id()), Some(stamp));
        assert_eq!(Stamp::parse("hello"), None);
    }
}
