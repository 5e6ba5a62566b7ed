//! HTTP responses of the API handlers. Each handler's error type maps to a response once, here or
//! beside it; handlers never build error bodies by hand.

use crate::api_error::ApiError;
use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
    ApiGatewayV2httpResponse,
};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// The request body as text: a text body as it is, a binary one if it is UTF-8.
pub fn body_text(body: &Body) -> Result<&str, std::str::Utf8Error> {
    match body {
        Body::Text(text) => Ok(text),
        other => std::str::from_utf8(body_bytes(other)),
    }
}

/// A boxed future, so handlers can be called through `dyn HttpHandler`.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// An API handler as Lambda (and the local stack) calls it: request in, response out, never an
/// error (client mistakes are 4xx responses, dependency faults 5xx).
pub trait HttpHandler: Send + Sync {
    fn call(&self, request: lambda_http::Request) -> BoxFuture<'_, HttpResponse>;
}

/// An API Gateway HTTP API (payload 2.0) request event: the fields a handler's request is made
/// of; the rest (`version`, `routeKey`, the parsed `queryStringParameters`) is skipped. Read by
/// this type rather than `aws_lambda_events`' `ApiGatewayV2httpRequest`, whose header map buffers
/// every value through an untagged enum to accept the other event sources' shapes: that cost the
/// receiver 1.8 µs of its 10 µs for the sample event's ten headers (BENCHMARKS.md). Here a
/// header value is what payload 2.0 sends, one string (API Gateway joins repeated ones).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiEvent {
    #[serde(default)]
    pub raw_path: Option<String>,
    #[serde(default)]
    pub raw_query_string: Option<String>,
    #[serde(default)]
    pub cookies: Option<Vec<String>>,
    #[serde(default, deserialize_with = "header_map")]
    pub headers: http::HeaderMap,
    #[serde(default)]
    pub path_parameters: Option<HashMap<String, String>>,
    #[serde(default)]
    pub stage_variables: Option<HashMap<String, String>>,
    #[serde(default)]
    pub request_context: HttpApiRequestContext,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
}

/// The part of the request context handlers read: the method, the caller's address and agent
/// (`http`), and what the authorizer verified (the JWT's claims). The ids and names of the
/// account, API, stage and request are skipped: nothing reads them, and they were a tenth of the
/// receiver's cost per webhook.
#[derive(Debug, Default, Deserialize)]
pub struct HttpApiRequestContext {
    #[serde(default)]
    pub http: ApiGatewayV2httpRequestContextHttpDescription,
    #[serde(default)]
    pub authorizer: Option<ApiGatewayRequestAuthorizer>,
}

/// `{"name": "value", ...}` (or null) as a header map.
fn header_map<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<http::HeaderMap, D::Error> {
    struct Headers;
    impl<'de> serde::de::Visitor<'de> for Headers {
        type Value = http::HeaderMap;
        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("an object of header names to string values")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(http::HeaderMap::new())
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_map(self)
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, mut entries: M) -> Result<Self::Value, M::Error> {
            use serde::de::Error;
            let mut headers = http::HeaderMap::with_capacity(entries.size_hint().unwrap_or(16));
            while let Some((name, value)) = entries.next_entry::<std::borrow::Cow<'de, str>, String>()? {
                let name = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| M::Error::custom(format_args!("invalid header name {name:?}")))?;
                let value = HeaderValue::try_from(value)
                    .map_err(|_| M::Error::custom(format_args!("invalid value of header {name}")))?;
                headers.append(name, value);
            }
            Ok(headers)
        }
    }
    deserializer.deserialize_option(Headers)
}

/// An API Gateway HTTP API (payload 2.0) event as the request a handler takes: method, path and
/// query, headers, body, and the path parameters, query, stage variables and request context as
/// `lambda_http`'s extensions. Every HTTP function is behind an HTTP API, so the event is read
/// as that alone: `lambda_http`'s own conversion first buffers the event to guess its source and
/// rebuilds an absolute URL through the `url` crate, which cost the receiver more than its
/// handler did (BENCHMARKS.md).
pub fn request_from_event(event: HttpApiEvent) -> lambda_http::Request {
    let query = event.raw_query_string.unwrap_or_default();
    let mut path_and_query = event.raw_path.unwrap_or_else(|| "/".to_owned());
    if !query.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&query);
    }
    let body = match event.body {
        None => Body::Empty,
        Some(body) if !event.is_base64_encoded => Body::Text(body),
        // API Gateway encodes what is not text; undecodable base64 reaches the handler as is.
        Some(body) => match base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &body) {
            Ok(bytes) => Body::Binary(bytes),
            Err(_) => Body::Text(body),
        },
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = event.request_context.http.method.clone();
    *request.uri_mut() = http::Uri::try_from(path_and_query).unwrap_or_else(|_| http::Uri::from_static("/"));
    *request.headers_mut() = event.headers;
    if let Some(cookies) = event.cookies
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        request.headers_mut().insert(http::header::COOKIE, value);
    }
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http = event.request_context.http;
    context.authorizer = event.request_context.authorizer;
    let mut request = request.with_request_context(RequestContext::ApiGatewayV2(context));
    // `lambda_http` reads an empty map as absent (`*_ref` gives `None`, the owned getters an empty
    // map), so an empty one is not stored: each is an allocation and a free per request.
    if !query.is_empty() {
        request = request.with_query_string_parameters(query.parse::<QueryMap>().unwrap_or_default());
    }
    if let Some(parameters) = event.path_parameters.filter(|parameters| !parameters.is_empty()) {
        request = request.with_path_parameters(parameters);
    }
    if let Some(variables) = event.stage_variables.filter(|variables| !variables.is_empty()) {
        request = request.with_stage_variables(variables);
    }
    request
}

/// A handler's response as the HTTP API (payload 2.0) response event.
pub fn response_to_event(response: HttpResponse) -> ApiGatewayV2httpResponse {
    let (mut parts, body) = response.into_parts();
    let mut event = ApiGatewayV2httpResponse::default();
    event.status_code = i64::from(parts.status.as_u16());
    // The HTTP API takes cookies apart from the headers.
    event.cookies = parts
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok().map(str::to_owned))
        .collect();
    parts.headers.remove(http::header::SET_COOKIE);
    event.headers = parts.headers;
    (event.is_base64_encoded, event.body) = match body {
        Body::Empty => (false, None),
        text @ Body::Text(_) => (false, Some(text)),
        binary @ Body::Binary(_) => (true, Some(binary)),
        _ => (false, None),
    };
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(body: &str, is_base64_encoded: bool) -> HttpApiEvent {
        serde_json::from_value(json!({
            "version": "2.0", "routeKey": "PUT /icare/policies/{policyId}", "rawPath": "/icare/policies/p1",
            "rawQueryString": "a=1&a=2&b=x%20y", "cookies": ["c=1", "d=2"],
            "headers": {"content-type": "application/json", "x-key": "v"},
            "pathParameters": {"policyId": "p1"},
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "x", "domainPrefix": "x",
                "http": {"method": "PUT", "path": "/icare/policies/p1", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "PUT /icare/policies/{policyId}", "stage": "$default", "time": "t", "timeEpoch": 0,
                "authorizer": {"jwt": {"claims": {"client_id": "c1"}, "scopes": null}}},
            "body": body, "isBase64Encoded": is_base64_encoded
        }))
        .expect("an HTTP API event")
    }

    #[test]
    fn an_http_api_event_becomes_the_request_handlers_take() {
        let request = request_from_event(event(r#"{"x":1}"#, false));
        assert_eq!(request.method(), http::Method::PUT);
        assert_eq!(request.uri(), "/icare/policies/p1?a=1&a=2&b=x%20y");
        assert_eq!(request.headers()["x-key"], "v");
        assert_eq!(request.headers()[http::header::COOKIE], "c=1; d=2");
        assert_eq!(request.path_parameters_ref().and_then(|p| p.first("policyId")), Some("p1"));
        let query = request.query_string_parameters_ref().expect("query");
        assert_eq!(query.all("a"), Some(vec!["1", "2"]));
        assert_eq!(query.first("b"), Some("x y"));
        assert_eq!(crate::caller::caller_id(&request).as_deref(), Some("c1"));
        let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
            panic!("an HTTP API context")
        };
        assert_eq!(context.http.source_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(body_bytes(request.body()), br#"{"x":1}"#);
    }

    #[test]
    fn absent_and_empty_maps_read_the_same_as_lambda_http_reads_them() {
        let bare: HttpApiEvent = serde_json::from_value(json!({
            "rawPath": "/hicaps/webhooks", "rawQueryString": "", "pathParameters": {}, "stageVariables": null,
            "requestContext": {"http": {"method": "POST", "path": "/hicaps/webhooks"}}
        }))
        .expect("an HTTP API event");
        let request = request_from_event(bare);
        assert_eq!(request.uri(), "/hicaps/webhooks");
        assert!(request.query_string_parameters_ref().is_none() && request.query_string_parameters().is_empty());
        assert!(request.path_parameters_ref().is_none() && request.path_parameters().is_empty());
        assert!(request.stage_variables_ref().is_none() && request.stage_variables().is_empty());
        assert!(matches!(request.request_context_ref(), Some(RequestContext::ApiGatewayV2(_))));
    }

    #[test]
    fn headers_are_read_as_payload_2_sends_them() {
        let event: HttpApiEvent =
            serde_json::from_str(r#"{"headers": {"X-Key": "v", "accept": "a, b"}}"#).expect("event");
        assert_eq!(event.headers["x-key"], "v");
        assert_eq!(event.headers.get_all("accept").iter().count(), 1, "a joined value stays one value");
        for missing in [r#"{}"#, r#"{"headers": null, "pathParameters": null, "stageVariables": null}"#] {
            let event: HttpApiEvent = serde_json::from_str(missing).expect("event");
            assert!(event.headers.is_empty() && event.path_parameters.is_none() && event.stage_variables.is_none());
        }
        let error = serde_json::from_str::<HttpApiEvent>(r#"{"headers": {"bad name": "v"}}"#).expect_err("refused");
        assert!(error.to_string().contains("invalid header name \"bad name\""), "{error}");
        assert!(serde_json::from_str::<HttpApiEvent>(r#"{"headers": {"x": "line\nbreak"}}"#).is_err());
    }

    #[test]
    fn a_base64_body_is_decoded_and_bad_base64_kept_as_sent() {
        assert_eq!(body_bytes(request_from_event(event("AAEC", true)).body()), [0u8, 1, 2]);
        assert_eq!(body_bytes(request_from_event(event("not base64!", true)).body()), b"not base64!");
    }

    #[test]
    fn a_response_becomes_the_http_api_response_with_cookies_apart() {
        let mut response = json(StatusCode::CREATED, &json!({"id": 1}));
        response.headers_mut().append(http::header::SET_COOKIE, HeaderValue::from_static("s=1"));
        let event = response_to_event(response);
        assert_eq!(event.status_code, 201);
        assert_eq!(event.headers[CONTENT_TYPE], "application/json");
        assert!(event.headers.get(http::header::SET_COOKIE).is_none());
        assert_eq!(event.cookies, vec!["s=1".to_owned()]);
        assert!(!event.is_base64_encoded);
        assert_eq!(serde_json::to_value(&event).expect("serialises")["body"], r#"{"id":1}"#);
        assert!(response_to_event(empty(StatusCode::ACCEPTED)).body.is_none());
    }
}
