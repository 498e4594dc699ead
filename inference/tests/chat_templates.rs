//! Chat templates rendered by minijinja against llama-cpp-python's Jinja2 renderer:
//! templates in the styles of the supported families (SmolLM2's own, Llama 3, Qwen2,
//! Qwen3's reasoning branches, Mistral's `[INST]` with `raise_exception`) and a few
//! conversations, rendered by `scripts/make-template-fixtures.py` into a checked-in
//! fixture. The text must be equal; a conversation the template refuses must be refused
//! with the template's message.

use neuroshard_inference::chat_template::{ChatMessage, ChatTemplate};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct Render {
    text: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    template: String,
    bos_token: String,
    eos_token: String,
    renders: Vec<Render>,
}

#[derive(Deserialize)]
struct Fixture {
    conversations: Vec<Vec<Message>>,
    cases: Vec<Case>,
}

#[test]
fn templates_render_as_llama_cpp_python_renders_them() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates.json");
    let fixture: Fixture =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    for case in &fixture.cases {
        let origin = Path::new(&case.name);
        let template =
            ChatTemplate::new(&case.template, &case.bos_token, &case.eos_token, origin).unwrap();
        for (conversation, expected) in fixture.conversations.iter().zip(&case.renders) {
            let messages: Vec<ChatMessage> = conversation
                .iter()
                .map(|m| ChatMessage::new(&m.role, &m.content))
                .collect();
            let rendered = template.render(&messages, true);
            match (&expected.text, &expected.error) {
                (Some(text), _) => assert_eq!(&rendered.unwrap(), text, "{}", case.name),
                (None, Some(error)) => {
                    let msg = rendered.unwrap_err().to_string();
                    assert!(msg.contains(error) && msg.contains(&case.name), "{msg}");
                }
                (None, None) => panic!("{}: a render with neither text nor error", case.name),
            }
        }
    }
}
