//! The outbound HTTP adapter reads at most a request's `max_body` of an answer, whether the
//! upstream declares its length or streams it.

use shared::http_client::{
    HttpClient, HttpError, MAX_BODY_BYTES, MAX_TOKEN_BODY_BYTES, Method, OutboundRequest, ReqwestClient,
};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn answers_over_the_cap_are_an_error_not_a_buffer() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; MAX_BODY_BYTES + 1]))
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; MAX_TOKEN_BODY_BYTES + 1]))
        .mount(&server)
        .await;
    Mock::given(path("/fits"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; MAX_BODY_BYTES]))
        .mount(&server)
        .await;
    let client = ReqwestClient::new().expect("client");
    let get = |route: &str| OutboundRequest::new(Method::Get, format!("{}{route}", server.uri()));
    assert_eq!(client.send(get("/big")).await.map(|r| r.status), Err(HttpError::TooLarge(MAX_BODY_BYTES)));
    let token = get("/token").max_body(MAX_TOKEN_BODY_BYTES);
    assert_eq!(client.send(token).await.map(|r| r.status), Err(HttpError::TooLarge(MAX_TOKEN_BODY_BYTES)));
    assert_eq!(client.send(get("/fits")).await.map(|r| r.body.len()), Ok(MAX_BODY_BYTES));
}
