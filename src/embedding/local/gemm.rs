//! `out += x · Wᵀ` for few rows (one or two short texts) against weights packed once at
//! load time into 16-column panels.
//!
//! A general sgemm packs both operands on every call; with few rows that is all its
//! time (59% in `pack_avx512` at batch 1 in a profile), and the weights — 42 MB for
//! MiniLM — are read twice from memory. Pre-packed panels are streamed once instead.
//! Large batches still go to `matrixmultiply`, which is faster there.

/// Output columns per panel (one AVX-512 register, two AVX2 ones).
pub const NR: usize = 16;
/// Rows per micro-kernel call.
const MR: usize = 4;

/// `W` (`[n, k]`, row-major as PyTorch stores a linear layer) as panels: panel `p`
/// holds `W[16p + c][kk]` at `p·k·16 + kk·16 + c`, zero-padded past `n`.
pub struct Packed {
    pub k: usize,
    pub n: usize,
    data: Vec<f32>,
}

impl Packed {
    pub fn new(w: &[f32], n: usize, k: usize) -> Packed {
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels * k * NR];
        for j in 0..n {
            for kk in 0..k {
                data[(j / NR) * k * NR + kk * NR + j % NR] = w[j * k + kk];
            }
        }
        Packed { k, n, data }
    }

    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }
}

#[inline(always)]
unsafe fn kernel<const R: usize, const FMA: bool>(x: &[f32], ldx: usize, wp: &[f32], k: usize, out: *mut f32, ldo: usize, cols: usize) {
    let mut acc = [[0f32; NR]; R];
    let wp = &wp[..k * NR];
    for kk in 0..k {
        let w: &[f32; NR] = wp[kk * NR..kk * NR + NR].try_into().expect("panel row");
        for r in 0..R {
            let a = x[r * ldx + kk];
            for c in 0..NR {
                // mul_add is one instruction only where FMA is enabled; else a libm call.
                acc[r][c] = if FMA { a.mul_add(w[c], acc[r][c]) } else { a * w[c] + acc[r][c] };
            }
        }
    }
    for r in 0..R {
        for c in 0..cols {
            // SAFETY: the caller guarantees rows < R and cols are inside `out`.
            unsafe { *out.add(r * ldo + c) += acc[r][c] };
        }
    }
}

#[inline(always)]
unsafe fn panels_impl<const FMA: bool>(x: &[f32], m: usize, w: &Packed, out: *mut f32, ldo: usize, panels: std::ops::Range<usize>) {
    let k = w.k;
    for p in panels {
        let wp = &w.data[p * k * NR..(p + 1) * k * NR];
        let c0 = p * NR;
        let cols = NR.min(w.n - c0);
        let mut r = 0;
        while r + MR <= m {
            unsafe { kernel::<MR, FMA>(&x[r * k..], k, wp, k, out.add(r * ldo + c0), ldo, cols) };
            r += MR;
        }
        while r < m {
            unsafe { kernel::<1, FMA>(&x[r * k..], k, wp, k, out.add(r * ldo + c0), ldo, cols) };
            r += 1;
        }
    }
}

/// Explicit AVX-512 / AVX2 micro-kernels: left to the auto-vectoriser, the 4 × 16
/// accumulator block was kept in scalar registers and spilled (a profile showed
/// `vfmadd231ss` and stack moves: 24 texts/s at batch 1).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{NR, Packed};

    /// One panel, rows `r0..r0 + R`, accumulating in `R` zmm registers.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel512<const R: usize>(x: &[f32], ldx: usize, wp: *const f32, k: usize, out: *mut f32, ldo: usize, cols: usize) {
        assert!(x.len() >= (R - 1) * ldx + k);
        let xp = x.as_ptr();
        unsafe {
            let mut acc = [_mm512_setzero_ps(); R];
            for kk in 0..k {
                let w = _mm512_loadu_ps(wp.add(kk * NR));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*xp.add(r * ldx + kk)), w, *a);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let o = out.add(r * ldo);
                if cols == NR {
                    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), *a));
                } else {
                    let mut tmp = [0f32; NR];
                    _mm512_storeu_ps(tmp.as_mut_ptr(), *a);
                    for (c, t) in tmp.iter().enumerate().take(cols) {
                        *o.add(c) += t;
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel256<const R: usize>(x: &[f32], ldx: usize, wp: *const f32, k: usize, out: *mut f32, ldo: usize, cols: usize) {
        assert!(x.len() >= (R - 1) * ldx + k);
        let xp = x.as_ptr();
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for kk in 0..k {
                let w0 = _mm256_loadu_ps(wp.add(kk * NR));
                let w1 = _mm256_loadu_ps(wp.add(kk * NR + 8));
                for (r, a) in acc.iter_mut().enumerate() {
                    let b = _mm256_set1_ps(*xp.add(r * ldx + kk));
                    a[0] = _mm256_fmadd_ps(b, w0, a[0]);
                    a[1] = _mm256_fmadd_ps(b, w1, a[1]);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let mut tmp = [0f32; NR];
                _mm256_storeu_ps(tmp.as_mut_ptr(), a[0]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), a[1]);
                let o = out.add(r * ldo);
                for (c, t) in tmp.iter().enumerate().take(cols) {
                    *o.add(c) += t;
                }
            }
        }
    }

    macro_rules! panels {
        ($name:ident, $kernel:ident, $feature:literal, $rows:literal) => {
            #[target_feature(enable = $feature)]
            pub unsafe fn $name(x: &[f32], m: usize, w: &Packed, out: *mut f32, ldo: usize, panels: std::ops::Range<usize>) {
                let k = w.k;
                for p in panels {
                    let wp = w.data[p * k * NR..(p + 1) * k * NR].as_ptr();
                    let c0 = p * NR;
                    let cols = NR.min(w.n - c0);
                    let mut r = 0;
                    unsafe {
                        while r + $rows <= m {
                            $kernel::<$rows>(&x[r * k..], k, wp, k, out.add(r * ldo + c0), ldo, cols);
                            r += $rows;
                        }
                        // The last rows in one call, not one call per row (each call
                        // streams the whole panel).
                        let (xr, o) = (&x[r * k..], out.add(r * ldo + c0));
                        match m - r {
                            0 => {}
                            1 => $kernel::<1>(xr, k, wp, k, o, ldo, cols),
                            2 => $kernel::<2>(xr, k, wp, k, o, ldo, cols),
                            3 => $kernel::<3>(xr, k, wp, k, o, ldo, cols),
                            4 => $kernel::<4>(xr, k, wp, k, o, ldo, cols),
                            5 => $kernel::<5>(xr, k, wp, k, o, ldo, cols),
                            6 => $kernel::<6>(xr, k, wp, k, o, ldo, cols),
                            _ => $kernel::<7>(xr, k, wp, k, o, ldo, cols),
                        }
                    }
                }
            }
        };
    }

    // AVX-512: 8 rows × 16 columns in 8 of the 32 zmm registers; AVX2: 6 × 16 in 12
    // of the 16 ymm registers (the usual register-blocking limits).
    panels!(panels_avx512, kernel512, "avx512f", 8);
    panels!(panels_avx2, kernel256, "avx2,fma", 6);
}

/// `out[r][16p..16p+16] += x[r] · W[16p..]ᵀ` for rows `0..m` and the given panels;
/// `x` is `[m, w.k]` row-major, `out` has row stride `ldo`.
#[cfg(test)]
pub fn add_product(x: &[f32], m: usize, w: &Packed, out: &mut [f32], ldo: usize, panels: std::ops::Range<usize>) {
    assert!(m == 0 || out.len() >= (m - 1) * ldo + w.n.min(panels.end * NR));
    // SAFETY: `out` holds every element written (checked above).
    unsafe { add_product_raw(x, m, w, out.as_mut_ptr(), ldo, panels) }
}

/// `out[r][16p..16p+16] += x[r] · W[16p..]ᵀ` into a raw pointer, so threads can fill disjoint panels of one
/// output.
///
/// # Safety
/// `out` must be valid for writes at `r·ldo + c` for every row `r < m` and column `c`
/// of the given panels (below `w.n`), and no other thread may touch those elements.
pub unsafe fn add_product_raw(x: &[f32], m: usize, w: &Packed, out: *mut f32, ldo: usize, panels: std::ops::Range<usize>) {
    assert!(x.len() >= m * w.k && panels.end <= w.panels());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { x86::panels_avx512(x, m, w, out, ldo, panels) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { x86::panels_avx2(x, m, w, out, ldo, panels) };
        }
    }
    unsafe { panels_impl::<false>(x, m, w, out, ldo, panels) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        for (m, k, n) in [(1, 8, 16), (5, 24, 70), (9, 33, 40), (23, 16, 32), (15, 7, 16)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0).collect();
            let p = Packed::new(&w, n, k);
            let mut out = vec![1f32; m * n];
            add_product(&x, m, &p, &mut out, n, 0..p.panels());
            // Every kernel this CPU can run gives the same.
            let mut variants = vec![];
            let mut portable = vec![1f32; m * n];
            unsafe { panels_impl::<false>(&x, m, &p, portable.as_mut_ptr(), n, 0..p.panels()) };
            variants.push(portable);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                let mut v = vec![1f32; m * n];
                unsafe { x86::panels_avx2(&x, m, &p, v.as_mut_ptr(), n, 0..p.panels()) };
                variants.push(v);
            }
            for v in &variants {
                assert!(v.iter().zip(&out).all(|(a, b)| (a - b).abs() < 1e-4));
            }
            for r in 0..m {
                for j in 0..n {
                    let want = 1.0 + (0..k).map(|kk| x[r * k + kk] * w[j * k + kk]).sum::<f32>();
                    assert!((out[r * n + j] - want).abs() < 1e-4, "m {m} k {k} n {n} at ({r}, {j})");
                }
            }
        }
    }
}
