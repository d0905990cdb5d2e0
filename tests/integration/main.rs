//! Integration tests over the wire: one binary, modules inside (compile time).

mod autotune;
mod copy;
mod embeddings;
mod fake_embed;
mod hostile;
mod psql;
mod restart;
mod roles;
mod security;
mod sources;
mod support;
mod vectors;
mod wire;
