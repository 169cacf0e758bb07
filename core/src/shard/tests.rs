//! Unit tests of the shard's rules (one per rule and typed error).
