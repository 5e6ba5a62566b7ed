//! Requests as API Gateway hands them to a function, for tests and the local stack (feature
//! `embedded`). `caller::caller_id` reads what [`jwt_context`] writes. Also an endpoint that
//! never answers, for timeout tests.

use lambda_http::RequestExt;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;

/// An HTTP API (payload v2) request context in which API Gateway's JWT authorizer has verified a
/// token for `caller` (its `client_id` claim); without a caller, one with no authorizer.
pub fn jwt_context(caller: Option<&str>) -> ApiGatewayV2httpRequestContext {
    let mut context = ApiGatewayV2httpRequestContext::default();
    if let Some(caller) = caller {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims.insert("client_id".to_owned(), caller.to_owned());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        context.authorizer = Some(authorizer);
    }
    context
}

/// `request` with `context` as its API Gateway request context.
pub fn with_context(request: lambda_http::Request, context: ApiGatewayV2httpRequestContext) -> lambda_http::Request {
    request.with_request_context(RequestContext::ApiGatewayV2(context))
}

/// An endpoint that accepts connections and never answers, the worst an endpoint can do: its
/// `http://host:port` (no trailing slash), and the task that holds its connections open (abort
/// it when done).
pub async fn silent_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let endpoint = format!("http://{}", listener.local_addr().expect("a bound address"));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            open.push(connection);
        }
    });
    (endpoint, held)
}
