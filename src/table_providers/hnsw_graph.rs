//! A read-only, flat copy of an hnsw_rs graph, searched by our own loop.
//!
//! hnsw_rs builds, extends and stores the graph; its search path allocates per query
//! (a SipHash `HashMap` of visited points, an `Arc` per candidate, a lock per
//! neighbour list; see the README's profile). After each build, load or append the
//! graph is copied here into arrays — layer 0 as one offsets + neighbours pair, upper
//! layers as small maps, vectors contiguous in data-id order — and searched with a
//! reusable visited-stamp array and two binary heaps, the way hnswlib does. Same
//! graph, same answers up to ties; the search itself is ours.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use hnsw_rs::prelude::{Distance, Hnsw};

#[derive(Clone, Copy, PartialEq)]
struct D(f32);
impl Eq for D {}
impl PartialOrd for D {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for D {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

pub struct FlatGraph {
    dims: usize,
    /// Graph-form vectors by data id (zeros for ids not in the graph).
    vectors: Vec<f32>,
    l0_offsets: Vec<u32>,
    l0_neighbours: Vec<u32>,
    /// `upper[l - 1]`: neighbours on layer l of the points that reach it.
    upper: Vec<HashMap<u32, Box<[u32]>>>,
    entry: u32,
    len: usize,
}

thread_local! {
    /// Visited stamps, reused across queries on this thread.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

impl FlatGraph {
    /// Copy `hnsw` (data ids below `ids`) into flat arrays. None for an empty graph.
    pub fn from_hnsw<Dist: Distance<f32> + Send + Sync>(hnsw: &Hnsw<'_, f32, Dist>, ids: usize, dims: usize) -> Option<FlatGraph> {
        if hnsw.get_nb_point() == 0 {
            return None;
        }
        let indexation = hnsw.get_point_indexation();
        let mut vectors = vec![0f32; ids * dims];
        let mut l0: Vec<Vec<u32>> = vec![Vec::new(); ids];
        let mut upper: Vec<HashMap<u32, Box<[u32]>>> = Vec::new();
        let mut entry: Option<(u8, u32)> = None;
        for point in indexation {
            let id = point.get_origin_id();
            if id >= ids {
                continue;
            }
            vectors[id * dims..(id + 1) * dims].copy_from_slice(point.get_v());
            let level = point.get_point_id().0;
            if entry.is_none_or(|(l, _)| level > l) {
                entry = Some((level, id as u32));
            }
            for (layer, ns) in point.get_neighborhood_id().into_iter().enumerate() {
                if layer > level as usize {
                    break;
                }
                let list: Vec<u32> = ns.iter().map(|n| n.d_id as u32).filter(|d| (*d as usize) < ids).collect();
                if layer == 0 {
                    l0[id] = list;
                } else {
                    while upper.len() < layer {
                        upper.push(HashMap::new());
                    }
                    upper[layer - 1].insert(id as u32, list.into_boxed_slice());
                }
            }
        }
        let mut l0_offsets = Vec::with_capacity(ids + 1);
        let mut l0_neighbours = Vec::with_capacity(ids * 16);
        l0_offsets.push(0u32);
        for list in &l0 {
            l0_neighbours.extend_from_slice(list);
            l0_offsets.push(l0_neighbours.len() as u32);
        }
        let (top, entry) = entry?;
        upper.truncate(top as usize);
        Some(FlatGraph { dims, vectors, l0_offsets, l0_neighbours, upper, entry, len: ids })
    }

    /// Bytes the search structure holds (vectors, links, offsets).
    pub fn memory_bytes(&self) -> usize {
        let upper: usize = self.upper.iter().flat_map(|l| l.values()).map(|ns| 8 + ns.len() * 4).sum();
        self.vectors.len() * 4 + self.l0_offsets.len() * 4 + self.l0_neighbours.len() * 4 + upper
    }

    #[inline]
    fn vector(&self, id: u32) -> &[f32] {
        let i = id as usize * self.dims;
        &self.vectors[i..i + self.dims]
    }

    /// Up to `k` nearest data ids (by `dist`, smaller is closer) among those `keep`
    /// accepts, exploring `ef` candidates on layer 0.
    pub fn search(&self, q: &[f32], k: usize, ef: usize, dist: impl Fn(&[f32], &[f32]) -> f32, keep: Option<&dyn Fn(usize) -> bool>) -> Vec<usize> {
        let ef = ef.max(k).max(1);
        // Greedy descent through the upper layers.
        let mut ep = self.entry;
        let mut d_ep = dist(q, self.vector(ep));
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                if let Some(ns) = layer.get(&ep) {
                    for &n in ns.iter() {
                        let d = dist(q, self.vector(n));
                        if d < d_ep {
                            d_ep = d;
                            ep = n;
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        VISITED.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (stamps, stamp) = &mut *guard;
            if stamps.len() < self.len {
                stamps.resize(self.len, 0);
            }
            *stamp = stamp.wrapping_add(1);
            if *stamp == 0 {
                stamps.iter_mut().for_each(|s| *s = 0);
                *stamp = 1;
            }
            let stamp = *stamp;
            let accepts = |id: u32| keep.is_none_or(|f| f(id as usize));
            let mut candidates: BinaryHeap<Reverse<(D, u32)>> = BinaryHeap::with_capacity(ef * 2);
            let mut results: BinaryHeap<(D, u32)> = BinaryHeap::with_capacity(ef + 1);
            stamps[ep as usize] = stamp;
            candidates.push(Reverse((D(d_ep), ep)));
            if accepts(ep) {
                results.push((D(d_ep), ep));
            }
            while let Some(Reverse((D(dc), c))) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|(D(worst), _)| dc > *worst) {
                    break;
                }
                let (a, b) = (self.l0_offsets[c as usize] as usize, self.l0_offsets[c as usize + 1] as usize);
                for &n in &self.l0_neighbours[a..b] {
                    let s = &mut stamps[n as usize];
                    if *s == stamp {
                        continue;
                    }
                    *s = stamp;
                    let d = dist(q, self.vector(n));
                    let worst = results.peek().map(|(D(w), _)| *w).unwrap_or(f32::INFINITY);
                    if results.len() < ef || d < worst {
                        candidates.push(Reverse((D(d), n)));
                        if accepts(n) {
                            results.push((D(d), n));
                            if results.len() > ef {
                                results.pop();
                            }
                        }
                    }
                }
            }
            let mut out: Vec<(D, u32)> = results.into_vec();
            out.sort();
            out.truncate(k);
            out.into_iter().map(|(_, id)| id as usize).collect()
        })
    }
}
