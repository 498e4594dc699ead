//! Tests of the OpenAI-compatible request parsing.

use super::*;

fn parse(messages: Value) -> Result<Vec<ChatMessage>, String> {
    parse_messages(Some(&messages)).map_err(|e| e.message)
}

fn message(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: content.into(),
    }
}

#[test]
fn text_parts_are_joined_and_developer_is_system() {
    let parsed = parse(json!([
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]},
        {"role": "assistant", "content": null},
    ]))
    .unwrap();
    assert_eq!(
        parsed,
        [
            message("system", "Be brief."),
            message("user", "Hello, world"),
            message("assistant", "")
        ]
    );
}

#[test]
fn bad_messages_say_which_and_why() {
    for (messages, needle) in [
        (json!([]), "non-empty array"),
        (json!("hi"), "non-empty array"),
        (
            json!([{"role": "tool", "content": "x"}]),
            "messages[0].role \"tool\"",
        ),
        (
            json!([{"content": "x"}]),
            "messages[0].role must be a string",
        ),
        (json!([{"role": "user"}]), "messages[0].content"),
        (
            json!([{"role": "user", "content": null}]),
            "messages[0].content",
        ),
        (
            json!([{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            "messages[1].content parts",
        ),
        (
            json!([{"role": "user", "content": 7}]),
            "messages[0].content",
        ),
    ] {
        let err = parse(messages.clone()).unwrap_err();
        assert!(err.contains(needle), "{messages}: {err}");
    }
}
