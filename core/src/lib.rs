//! gonets engine: shards, routing, queues, protocol and registry (built in the engine issue).
