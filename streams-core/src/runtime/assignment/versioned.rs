//! The envelope of the assignment protocol's user data, both ways, versioned as Kafka Streams'
//! own so an assignor change rolls out by rolling bounce: the version the body is written in and
//! the latest version its writer reads (big-endian `u32` each), then the body (bincode).
//!
//! Version 2 on, a version only appends fields: a reader takes the fields it knows from a newer
//! body (bincode reads a prefix and leaves the rest). The leader writes each assignment in the
//! latest version every member reads (the least `latest` of the subscriptions), so an instance
//! of the previous release reads its assignment in full while the others upgrade. Version 1
//! bodies (the first release) are read through their own types.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version this build writes, and the latest it reads.
pub(crate) const LATEST_VERSION: u32 = 2;

/// User data split into its header and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    /// The version the body is written in.
    pub version: u32,
    /// The latest version its writer reads.
    pub latest: u32,
    /// The fields, bincode.
    pub body: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Splits `bytes`; `None` when they are too short to be user data of this protocol.
    pub fn open(bytes: &'a [u8]) -> Option<Envelope<'a>> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        Some(Envelope {
            version: word(0)?,
            latest: word(4)?,
            body: bytes.get(8..)?,
        })
    }

    /// The body read as `T` (a prefix of it, for a newer version); `None` when it does not
    /// decode.
    pub fn read<T: DeserializeOwned>(&self) -> Option<T> {
        bincode::serde::decode_from_slice(self.body, bincode::config::standard())
            .ok()
            .map(|(value, _)| value)
    }
}

/// `value` written as `version`, saying this build reads up to [`LATEST_VERSION`]. Plain
/// structs of strings, integers and sequences always encode.
pub(crate) fn encode<T: Serialize>(version: u32, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&LATEST_VERSION.to_be_bytes());
    if let Ok(body) = bincode::serde::encode_to_vec(value, bincode::config::standard()) {
        out.extend_from_slice(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Old {
        a: String,
        b: u64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct New {
        a: String,
        b: u64,
        c: Vec<(u32, i32)>,
    }

    #[test]
    fn a_reader_takes_the_fields_it_knows_from_a_newer_body() {
        let bytes = encode(
            LATEST_VERSION + 1,
            &New {
                a: "p".into(),
                b: 7,
                c: vec![(1, 2)],
            },
        );
        let envelope = Envelope::open(&bytes).expect("envelope");
        assert_eq!(envelope.version, LATEST_VERSION + 1);
        assert_eq!(envelope.latest, LATEST_VERSION);
        assert_eq!(
            envelope.read::<Old>(),
            Some(Old {
                a: "p".into(),
                b: 7
            })
        );
        let old = encode(
            1,
            &Old {
                a: "p".into(),
                b: 7,
            },
        );
        assert_eq!(Envelope::open(&old).and_then(|e| e.read::<New>()), None);
        assert_eq!(Envelope::open(b"\0\0\0\x02"), None);
    }
}
