//! HTTP responses of the API handlers. Each handler's error type maps to a response once, here or
//! beside it; handlers never build error bodies by hand.

use crate::api_error::ApiError;
use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Response};
use serde::Serialize;

pub type HttpResponse = Response<Body>;

fn with_json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(Body::Text(String::from_utf8(body).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn json(status: StatusCode, value: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => with_json(status, body),
        Err(_) => empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response
}

/// The API Error Payload with `status`.
pub fn api_error(status: StatusCode, error: &ApiError) -> HttpResponse {
    json(status, error)
}

/// The request body as bytes, whatever form API Gateway delivered it in.
pub fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

/// A boxed future, so handlers can be called through `dyn HttpHandler`.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// An API handler as Lambda (and the local stack) calls it: request in, response out, never an
/// error (client mistakes are 4xx responses, dependency faults 5xx).
pub trait HttpHandler: Send + Sync {
    fn call(&self, request: lambda_http::Request) -> BoxFuture<'_, HttpResponse>;
}
