//! The NATS JetStream driver: the same `rt` and `bulk` workloads against a
//! NATS server with JetStream, for comparison on one machine
//! (docs/nats-mapping.md). Not built yet.
