//! Scalar functions and table functions. `register_all` is the whole SQL function
//! surface this folder adds (later: distances, embed, vector_search, gpu_vram, …).

pub mod psql_compat;
pub mod version;

use datafusion::prelude::SessionContext;

pub fn register_all(ctx: &SessionContext) {
    ctx.register_udf(version::version_udf());
    for f in psql_compat::functions() {
        ctx.register_udf(f);
    }
}
