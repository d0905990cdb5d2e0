//! BERT's WordPiece tokenizer, read from a Hugging Face `tokenizer.json`: the
//! BertNormalizer (clean text, space around CJK ideographs, strip accents, lowercase),
//! the BertPreTokenizer (split on whitespace and punctuation), greedy longest-match
//! WordPiece with the `##` prefix, then `[CLS] … [SEP]` with truncation.
//!
//! Checked against the `tokenizers` library on all 117,659 WordNet glosses (identical
//! ids; see README), so the model sees exactly what sentence-transformers feeds it.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use super::unicode_tables::{NONSPACING_MARK, OTHER, PUNCTUATION, contains};
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    prefix: String,
    max_chars_per_word: usize,
    lowercase: bool,
    strip_accents: bool,
    chinese_chars: bool,
    clean_text: bool,
}

impl WordPiece {
    /// Parse `tokenizer.json` (a WordPiece model with a BERT normalizer).
    pub fn from_json(text: &str) -> Result<WordPiece> {
        let bad = |why: &str| Error::Configuration(format!("tokenizer.json: {why}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let model = &v["model"];
        if model["type"].as_str() != Some("WordPiece") {
            return Err(bad("only WordPiece (BERT-family) tokenizers are supported"));
        }
        let vocab: HashMap<String, u32> = model["vocab"]
            .as_object()
            .ok_or_else(|| bad("model.vocab is missing"))?
            .iter()
            .filter_map(|(k, id)| id.as_u64().map(|id| (k.clone(), id as u32)))
            .collect();
        let id = |tok: &str| vocab.get(tok).copied().ok_or_else(|| bad(&format!("vocabulary lacks {tok}")));
        let unk_token = model["unk_token"].as_str().unwrap_or("[UNK]");
        let norm = &v["normalizer"];
        let flag = |key: &str, default: bool| norm[key].as_bool().unwrap_or(default);
        let lowercase = flag("lowercase", true);
        Ok(WordPiece {
            unk: id(unk_token)?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            prefix: model["continuing_subword_prefix"].as_str().unwrap_or("##").to_string(),
            max_chars_per_word: model["max_input_chars_per_word"].as_u64().unwrap_or(100) as usize,
            lowercase,
            // BERT strips accents whenever it lowercases, unless told otherwise.
            strip_accents: norm["strip_accents"].as_bool().unwrap_or(lowercase),
            chinese_chars: flag("handle_chinese_chars", true),
            clean_text: flag("clean_text", true),
            vocab,
        })
    }

    /// Token ids of `text` with `[CLS]`/`[SEP]`, at most `max_len` in all.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut ids = vec![self.cls];
        let budget = max_len.saturating_sub(1);
        let normalized = self.normalize(text);
        'words: for word in pre_tokenize(&normalized) {
            for id in self.word_pieces(word) {
                if ids.len() >= budget {
                    break 'words;
                }
                ids.push(id);
            }
        }
        ids.push(self.sep);
        ids
    }

    fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if c.is_whitespace() {
                    out.push(' ');
                    continue;
                }
            }
            if self.chinese_chars && is_cjk(c) {
                out.push(' ');
                out.push(c);
                out.push(' ');
            } else {
                out.push(c);
            }
        }
        if self.strip_accents {
            out = out.nfd().filter(|c| !contains(NONSPACING_MARK, *c)).collect();
        }
        if self.lowercase {
            out = out.to_lowercase();
        }
        out
    }

    fn word_pieces(&self, word: &str) -> Vec<u32> {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        if chars.len() > self.max_chars_per_word {
            return vec![self.unk];
        }
        let mut pieces = vec![];
        let mut start = 0;
        let mut candidate = String::with_capacity(word.len() + self.prefix.len());
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while end > start {
                let from = chars[start].0;
                let to = if end == chars.len() { word.len() } else { chars[end].0 };
                candidate.clear();
                if start > 0 {
                    candidate.push_str(&self.prefix);
                }
                candidate.push_str(&word[from..to]);
                if let Some(id) = self.vocab.get(candidate.as_str()) {
                    found = Some(*id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => pieces.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        pieces
    }
}

/// Split on whitespace (dropped) and punctuation (kept, one character per piece).
fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
        } else if is_punctuation(c) {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
            out.push(&text[i..i + c.len_utf8()]);
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || contains(PUNCTUATION, c)
}

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && contains(OTHER, c)
}

/// The CJK ideograph blocks BERT puts spaces around.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "hello", ",", "cafe", "!", "北", "京", "a"];
        let map: serde_json::Map<String, serde_json::Value> =
            vocab.iter().enumerate().map(|(i, t)| (t.to_string(), serde_json::json!(i))).collect();
        let json = serde_json::json!({
            "normalizer": {"type": "BertNormalizer", "lowercase": true, "strip_accents": null, "clean_text": true, "handle_chinese_chars": true},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": map}
        });
        WordPiece::from_json(&json.to_string()).unwrap()
    }

    #[test]
    fn normalizes_splits_and_pieces() {
        let t = tiny();
        // unaffable → un ##aff ##able; accents stripped; punctuation split off; CJK spaced.
        assert_eq!(t.encode("Unaffable, CAFÉ!\u{0007}北京 zzz", 64), vec![2, 4, 5, 6, 8, 9, 10, 11, 12, 1, 3]);
        // Truncation keeps [CLS] and [SEP].
        assert_eq!(t.encode("a a a a a", 4), vec![2, 13, 13, 3]);
        assert_eq!(t.encode("", 8), vec![2, 3]);
    }
}
