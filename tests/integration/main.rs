//! Integration tests over the wire: one binary, modules inside (compile time).

mod autotune;
mod embeddings;
mod fake_embed;
mod psql;
mod restart;
mod security;
mod sources;
mod support;
mod vectors;
mod wire;
