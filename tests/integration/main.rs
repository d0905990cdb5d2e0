//! Integration tests over the wire: one binary, modules inside (compile time).

mod psql;
mod restart;
mod security;
mod support;
mod vectors;
mod wire;
