//! [`AssignmentInfo`]: what the leader tells each stream thread's member besides its partitions,
//! in the assignment's user data, versioned like [`super::subscription_info`].

use serde::{Deserialize, Serialize};

use super::subscription_info::{decode_versioned, encode_versioned};

/// Version 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AssignmentInfo {
    /// An instance's uncaught-exception handler answered `SHUTDOWN_APPLICATION`: every instance
    /// stops (Kafka Streams' `AssignorError.SHUTDOWN_REQUESTED`).
    pub shutdown_requested: bool,
}

impl AssignmentInfo {
    /// The user data bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(self)
    }

    /// Reads user data; the default (nothing to act on) for another version or writer.
    pub fn decode(bytes: &[u8]) -> AssignmentInfo {
        decode_versioned(bytes).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes_and_defaults_otherwise() {
        let info = AssignmentInfo {
            shutdown_requested: true,
        };
        assert_eq!(AssignmentInfo::decode(&info.encode()), info);
        assert_eq!(AssignmentInfo::decode(b""), AssignmentInfo::default());
        let mut newer = info.encode();
        newer[..4].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(AssignmentInfo::decode(&newer), AssignmentInfo::default());
    }
}
