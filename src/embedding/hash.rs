//! The built-in `hash` model: a lexical embedder (the hashing trick). Each lowercased
//! word, and each character trigram of `#word#`, adds ±weight to one of `dims` slots
//! chosen by a fixed 64-bit FNV-1a hash; the sum is L2-normalised. Texts that share
//! words and spellings land close together; synonyms do not — it is lexical, not
//! semantic. It needs no files or server, and gives the same vectors on every machine.

use async_trait::async_trait;

use super::Embedder;
use crate::error::Result;

pub struct HashEmbedder {
    dims: usize,
}

const WORD_WEIGHT: f32 = 1.0;
const TRIGRAM_WEIGHT: f32 = 0.5;

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Final avalanche so nearby inputs spread over the slots.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

impl HashEmbedder {
    pub fn new(dims: usize) -> HashEmbedder {
        HashEmbedder { dims: dims.max(1) }
    }

    fn add(&self, v: &mut [f32], feature: &[u8], seed: u64, weight: f32) {
        let h = fnv1a(feature, seed);
        let slot = (h % self.dims as u64) as usize;
        let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
        v[slot] += sign * weight;
    }

    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dims];
        let lower = text.to_lowercase();
        let mut padded = Vec::with_capacity(64);
        for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            self.add(&mut v, word.as_bytes(), 1, WORD_WEIGHT);
            padded.clear();
            padded.push('#');
            padded.extend(word.chars());
            padded.push('#');
            let mut buf = [0u8; 12];
            for w in padded.windows(3) {
                let mut n = 0;
                for c in w {
                    n += c.encode_utf8(&mut buf[n..]).len();
                }
                self.add(&mut v, &buf[..n], 2, TRIGRAM_WEIGHT);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
        } else {
            // Only punctuation: a fixed unit vector, so the result is still a valid vector.
            v[0] = 1.0;
        }
        v
    }
}

#[async_trait]
impl Embedder for HashEmbedder {
    async fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }

    fn max_in_flight(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn lexical_neighbours_are_close_and_vectors_are_unit() {
        let e = HashEmbedder::new(256);
        let a = e.embed_one("The cat sat on the mat");
        let b = e.embed_one("a cat sitting on a mat");
        let c = e.embed_one("Quarterly revenue grew nine percent");
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(cos(&a, &b) > cos(&a, &c) + 0.2, "{} vs {}", cos(&a, &b), cos(&a, &c));
        assert_eq!(e.embed_one("CAT"), e.embed_one("cat"));
        assert_eq!(e.embed_one("!!!").len(), 256);
    }

    /// Stored text indexes hold these vectors: they must not change between releases.
    #[test]
    fn vectors_are_stable() {
        let v = HashEmbedder::new(256).embed_one("lakehouse embeds text");
        let fingerprint: f64 = v.iter().enumerate().map(|(i, x)| (i as f64 + 1.0) * *x as f64).sum();
        assert!((fingerprint - FINGERPRINT).abs() < 1e-4, "{fingerprint}");
    }
    const FINGERPRINT: f64 = -46.876985;
}
