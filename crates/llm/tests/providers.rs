//! Each wire format against the scripted mock: streamed text, a tool call assembled from
//! argument fragments and the follow-up request carrying its result, a bad key, a
//! malformed stream, an in-stream error, a stream that breaks off.

mod common;

use clawgate_llm::{
    ChatRequest, LlmError, Message, StopReason, StreamEvent, ToolCall, ToolSpec, Usage,
};
use clawgate_testkit::{RecordedRequest, Reply, Value, WireFormat, json};
use common::{FORMATS, KEY, collect, fast_options, mock_llm, text_of};

fn exec_tool() -> ToolSpec {
    ToolSpec {
        name: "exec".into(),
        description: "Run a shell command on a node".into(),
        parameters: json!({
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        }),
    }
}

fn request(text: &str) -> ChatRequest {
    ChatRequest {
        system: Some("You are the gateway's agent.".into()),
        messages: vec![Message::user(text)],
        tools: vec![exec_tool()],
        max_tokens: Some(512),
    }
}

/// The request's auth as the format sends it.
fn assert_auth(format: WireFormat, req: &RecordedRequest) {
    match format {
        WireFormat::OpenAi | WireFormat::Ollama => {
            assert_eq!(req.header("authorization"), Some(&*format!("Bearer {KEY}")));
        }
        WireFormat::Anthropic => {
            assert_eq!(req.header("x-api-key"), Some(KEY));
            assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(req.header("authorization"), None);
        }
    }
    assert_eq!(req.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn streams_text() {
    for format in FORMATS {
        let (mock, llm) = mock_llm(format, fast_options()).await;
        mock.push(Reply::text("Hello from the mock model").with_usage(30, 6));

        let (events, error) = collect(llm.stream(request("Say hello"))).await;
        assert_eq!(error, None, "{format:?}");
        let StreamEvent::Started { model, failed } = &events[0] else {
            panic!("{format:?}: first event {events:?}")
        };
        assert_eq!(model.to_string(), "mock/mock-1");
        assert!(failed.is_empty());
        assert_eq!(text_of(&events), "Hello from the mock model", "{format:?}");
        let deltas = events
            .iter()
            .filter(|e| matches!(e, StreamEvent::TextDelta(_)))
            .count();
        assert!(deltas >= 4, "{format:?}: streamed in {deltas} deltas");
        assert_eq!(
            events[events.len() - 2..],
            [
                StreamEvent::Usage(Usage {
                    input_tokens: 30,
                    output_tokens: 6,
                    ..Usage::default()
                }),
                StreamEvent::Done {
                    stop_reason: StopReason::Stop
                },
            ],
            "{format:?}"
        );

        let requests = mock.requests();
        assert_eq!(requests.len(), 1, "{format:?}");
        let req = &requests[0];
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", format.path())
        );
        assert_auth(format, req);
        let body = &req.body;
        assert_eq!(body["model"], "mock-1");
        assert_eq!(body["stream"], true);
        match format {
            WireFormat::OpenAi => {
                assert_eq!(
                    body["messages"][0],
                    json!({"role": "system", "content": "You are the gateway's agent."})
                );
                assert_eq!(
                    body["messages"][1],
                    json!({"role": "user", "content": "Say hello"})
                );
                assert_eq!(body["stream_options"], json!({"include_usage": true}));
                assert_eq!(body["tool_choice"], "auto");
                assert_eq!(body["tools"][0]["type"], "function");
                assert_eq!(body["tools"][0]["function"]["name"], "exec");
                assert_eq!(
                    body["tools"][0]["function"]["parameters"]["required"],
                    json!(["command"])
                );
                assert_eq!(body["max_completion_tokens"], 512);
            }
            WireFormat::Anthropic => {
                assert_eq!(
                    body["system"],
                    json!([{"type": "text", "text": "You are the gateway's agent."}])
                );
                assert_eq!(
                    body["messages"],
                    json!([{"role": "user", "content": "Say hello"}])
                );
                assert_eq!(body["max_tokens"], 512);
                assert_eq!(body["tools"][0]["name"], "exec");
                assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
                assert_eq!(body["tool_choice"], json!({"type": "auto"}));
            }
            WireFormat::Ollama => {
                assert_eq!(body["messages"][0]["role"], "system");
                assert_eq!(
                    body["messages"][1],
                    json!({"role": "user", "content": "Say hello"})
                );
                assert_eq!(body["options"]["num_predict"], 512);
                assert_eq!(body["tools"][0]["function"]["name"], "exec");
                assert_eq!(body["truncate"], false);
            }
        }
    }
}

#[tokio::test]
async fn a_tool_call_is_assembled_from_fragments_and_its_result_goes_back() {
    for format in FORMATS {
        let (mock, llm) = mock_llm(format, fast_options()).await;
        mock.push(
            Reply::text("Let me check.")
                .and_tool_call("exec", json!({"command": "uname -s", "timeout": 30})),
        );
        mock.push(Reply::text("The node runs Linux."));

        let first = llm
            .stream(request("Which OS does the node run?"))
            .reply()
            .await
            .unwrap();
        assert_eq!(first.text, "Let me check.", "{format:?}");
        assert_eq!(first.stop_reason, StopReason::ToolUse, "{format:?}");
        let [call] = first.tool_calls.as_slice() else {
            panic!("{format:?}: {:?}", first.tool_calls)
        };
        assert_eq!(call.name, "exec");
        assert_eq!(
            call.arguments,
            json!({"command": "uname -s", "timeout": 30})
        );
        assert!(!call.id.is_empty());

        let mut follow_up = request("Which OS does the node run?");
        follow_up.messages.push(first.message());
        follow_up
            .messages
            .push(Message::tool_result(call, "Node: n1\nLinux\n", false));
        let second = llm.stream(follow_up).reply().await.unwrap();
        assert_eq!(second.text, "The node runs Linux.", "{format:?}");
        assert_eq!(second.stop_reason, StopReason::Stop);

        let requests = mock.requests();
        assert_eq!(requests.len(), 2, "{format:?}");
        let messages = &requests[1].body["messages"];
        assert_tool_round_trip(format, messages, call);
    }
}

/// The follow-up request replays the assistant's tool call and carries the result in the
/// format's own shape.
fn assert_tool_round_trip(format: WireFormat, messages: &Value, call: &ToolCall) {
    let messages = messages.as_array().unwrap();
    match format {
        WireFormat::OpenAi => {
            let assistant = &messages[2];
            assert_eq!(assistant["role"], "assistant");
            assert_eq!(assistant["content"], "Let me check.");
            assert_eq!(assistant["tool_calls"][0]["id"], call.id.as_str());
            assert_eq!(assistant["tool_calls"][0]["function"]["name"], "exec");
            let args: Value = serde_json::from_str(
                assistant["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(args, call.arguments);
            assert_eq!(
                messages[3],
                json!({"role": "tool", "content": "Node: n1\nLinux\n", "tool_call_id": call.id})
            );
        }
        WireFormat::Anthropic => {
            assert_eq!(messages[1]["role"], "assistant");
            assert_eq!(
                messages[1]["content"],
                json!([
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": call.id, "name": "exec", "input": call.arguments},
                ])
            );
            assert_eq!(
                messages[2],
                json!({"role": "user", "content": [{
                    "type": "tool_result", "tool_use_id": call.id,
                    "content": "Node: n1\nLinux\n", "is_error": false,
                }]})
            );
        }
        WireFormat::Ollama => {
            assert_eq!(messages[2]["role"], "assistant");
            assert_eq!(
                messages[2]["tool_calls"][0]["function"]["arguments"],
                call.arguments
            );
            assert_eq!(
                messages[3],
                json!({"role": "tool", "content": "Node: n1\nLinux\n", "tool_call_id": call.id, "tool_name": "exec"})
            );
        }
    }
}

#[tokio::test]
async fn malformed_tool_arguments_are_an_error_event() {
    // Ollama sends whole calls; arguments that are not JSON arrive as a string there.
    for format in FORMATS {
        let (mock, llm) = mock_llm(format, fast_options()).await;
        mock.push(Reply::tool_call_fragments(
            "exec",
            [r#"{"command": "#, r#""uname"#],
        ));
        let (events, error) = collect(llm.stream(request("go"))).await;
        let Some(LlmError::Stream {
            detail, retryable, ..
        }) = &error
        else {
            panic!("{format:?}: {error:?} after {events:?}")
        };
        assert!(
            detail.contains("the model called tool \"exec\" with malformed JSON arguments"),
            "{format:?}: {detail}"
        );
        assert!(!retryable);
        assert_eq!(mock.requests().len(), 1, "{format:?}: not retried");
    }
}

#[tokio::test]
async fn a_bad_key_names_the_config_key_and_never_the_key() {
    for format in FORMATS {
        let (mock, llm) = mock_llm(format, fast_options()).await;
        // The server echoes the key, as some proxies do.
        mock.push(Reply::status(401).message(&format!("Incorrect API key provided: {KEY}")));

        let (events, error) = collect(llm.stream(request("hi"))).await;
        assert!(events.is_empty(), "{format:?}: {events:?}");
        let error = error.expect("an error");
        let LlmError::Http { status, .. } = &error else {
            panic!("{format:?}: {error:?}")
        };
        assert_eq!(*status, 401);
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "mock/mock-1: HTTP 401 Unauthorized from {}",
                mock.base_url()
            )),
            "{format:?}: {text}"
        );
        assert!(
            text.contains("Incorrect API key provided: ***"),
            "{format:?}: {text}"
        );
        assert!(
            text.contains("check the API key in models.providers.mock.apiKey"),
            "{format:?}: {text}"
        );
        for shown in [text, format!("{error:?}")] {
            assert!(!shown.contains(KEY), "{format:?}: the key leaked: {shown}");
        }
        assert_eq!(mock.requests().len(), 1, "{format:?}: a 401 is not retried");
    }
}

#[tokio::test]
async fn a_malformed_stream_is_an_error_not_a_panic() {
    for format in FORMATS {
        let (mock, llm) = mock_llm(format, fast_options()).await;
        mock.push(Reply::malformed());
        let (events, error) = collect(llm.stream(request("hi"))).await;
        assert!(events.is_empty(), "{format:?}: {events:?}");
        let Some(LlmError::Stream { detail, .. }) = &error else {
            panic!("{format:?}: {error:?}")
        };
        assert!(
            detail.starts_with("the provider sent a malformed stream event"),
            "{format:?}: {detail}"
        );
        assert_eq!(mock.requests().len(), 1, "{format:?}: not retried");
    }
}

#[tokio::test]
async fn an_error_or_a_break_after_text_ends_the_stream_without_a_replay() {
    for format in FORMATS {
        for (reply, expect) in [
            (
                Reply::text("partial answer").then_error("Overloaded"),
                "Overloaded",
            ),
            (Reply::text("partial answer").then_disconnect(), "broke off"),
        ] {
            let (mock, llm) = mock_llm(format, fast_options()).await;
            mock.push(reply);
            mock.set_default(Reply::text("a second answer that must not be asked for"));
            let (events, error) = collect(llm.stream(request("hi"))).await;
            assert!(
                matches!(events[0], StreamEvent::Started { .. }),
                "{format:?}"
            );
            assert_eq!(text_of(&events), "partial answer", "{format:?}");
            let error = error.unwrap_or_else(|| panic!("{format:?}: no error after {events:?}"));
            assert!(error.to_string().contains(expect), "{format:?}: {error}");
            assert_eq!(
                mock.requests().len(),
                1,
                "{format:?}: a started answer is never replayed"
            );
        }
    }
}

#[tokio::test]
async fn thinking_streams_apart_from_the_answer() {
    for format in FORMATS {
        let (mock, llm) = mock_llm(format, fast_options()).await;
        mock.push(Reply::text("42").with_thinking("Six times seven."));
        let reply = llm
            .stream(request("What is six times seven?"))
            .reply()
            .await
            .unwrap();
        assert_eq!(reply.thinking, "Six times seven.", "{format:?}");
        assert_eq!(reply.text, "42", "{format:?}");
    }
}
