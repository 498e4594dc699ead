"""Streams a chat completion from a NeuroShard node with the official `openai` client.

Usage: python3 openai_stream.py BASE_URL
Prints one JSON line: the model ids listed, the streamed text, the number of content
chunks, the finish reason and the usage the server reported in its last chunk, plus the
non-streamed text of the same greedy request (sent as content parts) for comparison,
and the error of a bad request.
"""

import json
import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)

models = [m.id for m in client.models.list()]
request = dict(
    model=models[0],
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=12,
    temperature=0,
)

text, chunks, finish, usage = "", 0, None, None
stream = client.chat.completions.create(
    stream=True, stream_options={"include_usage": True}, **request
)
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage.model_dump()
    for choice in chunk.choices:
        if choice.delta.content:
            text += choice.delta.content
            chunks += 1
        if choice.finish_reason is not None:
            finish = choice.finish_reason

# The same request without streaming, its message split into text parts (the form
# the client sends for multi-part content): the server joins them.
parts = [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]
plain = client.chat.completions.create(
    **{**request, "messages": [{"role": "user", "content": parts}]}
)

try:
    client.chat.completions.create(**{**request, "max_tokens": -1})
    bad_request = None
except openai.BadRequestError as e:
    bad_request = {"status": e.status_code, "message": e.message}

print(json.dumps({
    "models": models,
    "text": text,
    "chunks": chunks,
    "finish_reason": finish,
    "usage": usage,
    "plain_text": plain.choices[0].message.content,
    "plain_usage": plain.usage.model_dump(),
    "bad_request": bad_request,
}))
