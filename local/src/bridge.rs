//! Serves Lambda HTTP handlers from an axum server the way API Gateway's HTTP API (payload v2)
//! would: query string and path parameters, and a request context whose JWT claims carry the
//! caller, here taken from a local API key instead of a verified token.

use axum::body::Body as AxumBody;
use axum::response::Response as AxumResponse;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use std::collections::HashMap;

/// API Gateway refuses payloads over 10 MB before any function sees them.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Converts an axum request into what `lambda_http` hands a handler in Lambda.
pub async fn to_lambda(
    request: axum::extract::Request,
    route_key: &str,
    path_parameters: HashMap<String, String>,
    caller: Option<&str>,
) -> Result<lambda_http::Request, AxumResponse> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        let mut response = AxumResponse::new(AxumBody::from(r#"{"message":"Request Entity Too Large"}"#));
        *response.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
        response
    })?;
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(error) => Body::Binary(error.into_bytes()),
        }
    };
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        query.entry(name.into_owned()).or_default().push(value.into_owned());
    }
    let mut context = shared::testing::jwt_context(caller);
    context.route_key = Some(route_key.to_owned());
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.stage = Some("$default".to_owned());
    context.http.method = parts.method.clone();
    context.http.path = Some(parts.uri.path().to_owned());
    let path_parameters: HashMap<String, Vec<String>> =
        path_parameters.into_iter().map(|(k, v)| (k, vec![v])).collect();
    Ok(http::Request::from_parts(parts, body)
        .with_query_string_parameters(query)
        .with_path_parameters(path_parameters)
        .with_request_context(RequestContext::ApiGatewayV2(context)))
}

/// Converts a handler's response back for axum.
pub fn from_lambda(response: lambda_http::Response<Body>) -> AxumResponse {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Empty => AxumBody::empty(),
        Body::Text(text) => AxumBody::from(text),
        Body::Binary(bytes) => AxumBody::from(bytes),
        _ => AxumBody::empty(),
    };
    AxumResponse::from_parts(parts, body)
}
