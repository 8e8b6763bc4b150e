//! What a consumer reports when a provider misbehaves: never a failure with code `Ok`, never
//! the provider's fault dressed up as the caller's, and never a message that can take over
//! the caller's terminal or flood its logs.

use mprpc::client::Channel;
use mprpc::status::MAX_PEER_MESSAGE;
use mprpc::{Code, Status};
use mprpc_tests::fake::{announce_response_of, fake_provider, go_away, raw_frame, response};
use mprpc_tests::{EchoClient, EchoRequest};

/// One call through a new channel to `address`; its failure.
async fn failed_call(address: String) -> Status {
    let client = EchoClient::new(Channel::to_address(address));
    let call = client.echo(EchoRequest::default());
    tokio::time::timeout(std::time::Duration::from_secs(30), call)
        .await
        .expect("the call ends in time")
        .expect_err("the fake provider never answers with success")
}

#[tokio::test]
async fn a_go_away_with_code_ok_is_unavailable() {
    let address = fake_provider(|_| go_away(0, "bye")).await;
    let status = failed_call(address.clone()).await;
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert_eq!(
        status.message(),
        format!("provider {address} closed the connection: bye")
    );
}

#[tokio::test]
async fn a_go_away_that_cannot_be_decoded_is_internal() {
    // Kind 6 is GoAway; 0xff 0xff is a varint that never ends.
    let address = fake_provider(|_| raw_frame(6, b"\xff\xff")).await;
    let status = failed_call(address.clone()).await;
    assert_eq!(status.code(), Code::Internal, "{status}");
    assert!(status.message().contains(&address), "{status}");
    assert!(
        status.message().contains("malformed GoAway header"),
        "{status}"
    );
}

#[tokio::test]
async fn a_go_away_with_an_unknown_code_is_unknown_and_says_so() {
    let address = fake_provider(|_| go_away(-4, "odd")).await;
    let status = failed_call(address).await;
    assert_eq!(status.code(), Code::Unknown, "{status}");
    assert!(status.message().contains("status code -4"), "{status}");
}

#[tokio::test]
async fn response_codes_outside_the_table_are_unknown_and_say_which() {
    for code in [-1, 17, 99, i32::MIN] {
        let address = fake_provider(move |id| response(id, code, "nope")).await;
        let status = failed_call(address).await;
        assert_eq!(status.code(), Code::Unknown, "{code}: {status}");
        assert!(
            status.message().starts_with("nope (")
                && status.message().contains(&format!("status code {code}")),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_hostile_status_message_is_escaped_and_cut() {
    let mut message = String::from("\x1b[2J\x1b]0;owned\x07");
    message.push_str(&"x".repeat(1 << 20));
    let sent_len = message.len();
    let address = fake_provider(move |id| response(id, Code::NotFound.as_i32(), &message)).await;
    let status = failed_call(address).await;
    assert_eq!(status.code(), Code::NotFound, "{status:.200}");
    let shown = status.message();
    assert!(
        !shown.chars().any(char::is_control),
        "a control character reached the caller: {shown:.200}"
    );
    assert!(
        shown.starts_with("\\u{1b}[2J\\u{1b}]0;owned\\u{7}xxx"),
        "{shown:.200}"
    );
    assert!(
        shown.len() < MAX_PEER_MESSAGE + 40,
        "{} bytes shown",
        shown.len()
    );
    let kept = MAX_PEER_MESSAGE - "\\u{1b}[2J\\u{1b}]0;owned\\u{7}".len();
    let cut = sent_len - "\x1b[2J\x1b]0;owned\x07".len() - kept;
    assert!(
        shown.ends_with(&format!("... ({cut} bytes cut)")),
        "{shown:.200}"
    );
}

#[tokio::test]
async fn a_frame_over_the_consumers_limit_is_the_providers_fault() {
    // The default limit is 16 MiB; announce 32 MiB.
    let address = fake_provider(|_| announce_response_of(32 << 20)).await;
    let status = failed_call(address.clone()).await;
    assert_eq!(status.code(), Code::Internal, "{status}");
    assert_eq!(
        status.message(),
        format!(
            "provider {address} sent a frame of {} bytes, over this consumer's max_frame_size \
             of {} bytes",
            32 << 20,
            16 << 20
        )
    );
}

#[tokio::test]
async fn a_reply_with_a_metadata_bomb_fails_that_call_without_being_decoded() {
    let address = fake_provider(|id| {
        // A response header of 200,000 empty metadata entries (field 4).
        let mut header = vec![0x08];
        let mut id = id;
        loop {
            let byte = (id & 0x7f) as u8;
            id >>= 7;
            if id == 0 {
                header.push(byte);
                break;
            }
            header.push(byte | 0x80);
        }
        for _ in 0..200_000 {
            header.extend_from_slice(&[0x22, 0x00]);
        }
        raw_frame(2, &header)
    })
    .await;
    let status = failed_call(address.clone()).await;
    assert_eq!(status.code(), Code::Internal, "{status}");
    assert!(
        status.message().contains(&address) && status.message().contains("200000 entries"),
        "{status}"
    );
}
