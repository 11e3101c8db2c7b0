//! Distinct 32-byte identifiers: a block's id, its convergent key, an image's hash.
//!
//! Each is its own type so that a key can never be passed where an id is expected
//! (the store must never see keys). All render as lowercase hex.

use std::fmt;
use std::str::FromStr;

/// Error for a string that is not 64 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected 64 hex digits, got {0:?}")]
pub struct ParseIdError(pub String);

macro_rules! hex_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Length in bytes of the binary form.
            pub const LEN: usize = 32;

            /// The raw bytes, for binary wire and file formats.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex, as shown to users and used in paths.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Reads the binary form from a slice that must be exactly 32 bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 32]>::try_from(bytes).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..16])
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_string()))?;
                Ok(Self(out))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_newtype!(
    /// Content address of a stored block: BLAKE3 of the whole block object. Public:
    /// the store indexes by it and verifies every upload against it.
    BlockId
);
hex_newtype!(
    /// Convergent key of a block: BLAKE3 keyed by the convergence secret over the
    /// plaintext. Secret to recipe holders; never sent to the store.
    BlockKey
);
hex_newtype!(
    /// BLAKE3 of a whole logical disk image, holes included; equals `b3sum` of the raw image.
    ImageHash
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = BlockId([0xab; 32]);
        let parsed: BlockId = id.to_hex().parse().unwrap();
        assert_eq!(parsed, id);
        assert!("zz".parse::<BlockId>().is_err());
        assert!("ab".repeat(31).parse::<BlockId>().is_err());
    }

    #[test]
    fn serde_is_hex_string() {
        let key = BlockKey([1; 32]);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{}\"", "01".repeat(32)));
        let back: BlockKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, key);
    }
}
