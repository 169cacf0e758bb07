//! gonets benchmark tools (see `bench/README.md`).
