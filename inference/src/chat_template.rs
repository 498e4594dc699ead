//! Chat templates from the model file: `tokenizer.chat_template` (Jinja) rendered with
//! minijinja the way Hugging Face Transformers and llama-cpp-python render it — blocks
//! trimmed (`trim_blocks`, `lstrip_blocks`), `loop_controls`, Python string and dict
//! methods (`strip`, `startswith`, `split`, `items`, ... through minijinja-contrib's
//! `pycompat`), and the context they pass: `messages`, `add_generation_prompt`,
//! `bos_token`, `eos_token` and `raise_exception`. A template that does not compile is a
//! load error and one that fails while rendering (an unsupported role, roles that do not
//! alternate) is a request error; both name the file and the problem.

use crate::error::{InferenceError, Result};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, Value};
use std::path::{Path, PathBuf};

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// The message as templates see it: a map with `role` and `content`.
    fn value(&self) -> Value {
        Value::from_pairs([("role", &self.role), ("content", &self.content)])
    }
}

/// A compiled chat template with the special tokens it may print.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The file the template came from (for errors).
    origin: PathBuf,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

const NAME: &str = "chat_template";

/// `raise_exception(message)`: the templates' way of refusing a conversation.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// The error's message with its causes (minijinja keeps the template's own message in
/// the detail, and a `raise_exception` message in the source chain).
fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

impl ChatTemplate {
    /// Compiles `source`, the template of the file `origin`.
    pub fn new(source: &str, bos_token: &str, eos_token: &str, origin: &Path) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| InferenceError::BadRequest(describe(&e)))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| {
                InferenceError::bad_file(
                    origin,
                    format!("chat template does not compile: {}", describe(&e)),
                )
            })?;
        Ok(Self {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            origin: origin.to_path_buf(),
        })
    }

    /// The prompt text of `messages`; `add_generation_prompt` opens the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let fail = |e: minijinja::Error| {
            InferenceError::BadRequest(format!(
                "the chat template of {} failed: {}",
                self.origin.display(),
                describe(&e)
            ))
        };
        let template = self.env.get_template(NAME).map_err(fail)?;
        template
            .render(minijinja::context! {
                messages => messages.iter().map(ChatMessage::value).collect::<Vec<_>>(),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> Result<ChatTemplate> {
        ChatTemplate::new(source, "<s>", "</s>", Path::new("model.gguf"))
    }

    #[test]
    fn a_refused_conversation_names_the_file_and_the_reason() {
        let t = template(
            "{% for m in messages %}{% if m.role == 'system' %}\
             {{ raise_exception('System role not supported') }}{% endif %}\
             {{ m.content }}{% endfor %}",
        )
        .unwrap();
        let err = t
            .render(&[ChatMessage::new("system", "x")], true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.gguf"), "{err}");
        assert!(err.contains("System role not supported"), "{err}");
        assert_eq!(
            t.render(&[ChatMessage::new("user", "hi")], true).unwrap(),
            "hi"
        );
    }

    #[test]
    fn a_template_that_does_not_compile_is_a_load_error() {
        let err = template("{% for m in messages %}").unwrap_err().to_string();
        assert!(
            err.contains("model.gguf") && err.contains("does not compile"),
            "{err}"
        );
    }

    #[test]
    fn python_string_methods_and_trimmed_blocks_work() {
        let t = template(
            "{%- for m in messages %}\n  {{- m.content.strip().upper() }}\
             {% if m.content.startswith(' a') %}!{% endif %}\n{% endfor %}{{ eos_token }}",
        )
        .unwrap();
        let out = t
            .render(&[ChatMessage::new("user", " ab ")], false)
            .unwrap();
        assert_eq!(out, "AB!</s>");
    }
}
