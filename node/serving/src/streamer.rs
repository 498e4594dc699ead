//! The text of a generation as it streams: accepted tokens in, new pieces of valid
//! UTF-8 text out, cut at the first stop sequence.

use neuroshard_inference::tokenizer::Tokenizer;

/// Turns accepted tokens into text pieces: decodes the whole completion each time and
/// emits what is new once it is valid UTF-8, and cuts the text at a stop sequence.
pub(crate) struct TextStreamer<'a> {
    tokenizer: &'a Tokenizer,
    stop: &'a [String],
    tokens: Vec<u32>,
    /// Text emitted so far (the final completion).
    pub(crate) text: String,
    pub(crate) stopped: bool,
    pub(crate) cancelled: bool,
}

impl<'a> TextStreamer<'a> {
    pub(crate) fn new(tokenizer: &'a Tokenizer, stop: &'a [String]) -> Self {
        Self {
            tokenizer,
            stop,
            tokens: Vec::new(),
            text: String::new(),
            stopped: false,
            cancelled: false,
        }
    }

    /// The new piece of text after `token`, if any.
    pub(crate) fn push(&mut self, token: u32) -> Option<String> {
        if self.stopped || self.cancelled {
            return None;
        }
        self.tokens.push(token);
        let full = self.tokenizer.decode(&self.tokens, true).ok()?;
        if full.ends_with('\u{FFFD}') {
            return None;
        }
        let full = match self.stop.iter().filter_map(|s| full.find(s.as_str())).min() {
            Some(cut) => {
                self.stopped = true;
                full[..cut].to_string()
            }
            None => full,
        };
        let piece = full.get(self.text.len()..).unwrap_or_default().to_string();
        self.text = full;
        Some(piece)
    }
}
