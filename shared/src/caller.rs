//! Who is calling. In AWS the HTTP API's JWT authorizer has verified the token and puts its
//! claims in the request context; the caller is the token's client id. The local stack puts the
//! caller of a local API key in the same place, so handlers have one way to ask.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// The claims that may carry the client id, in order: Cognito's `client_id`, OAuth's `azp`
/// (authorized party), then `sub` for client-credentials tokens that carry nothing else.
const CALLER_CLAIMS: [&str; 3] = ["client_id", "azp", "sub"];

pub fn caller_id(request: &Request) -> Option<String> {
    let RequestContext::ApiGatewayV2(context) = request.request_context_ref()? else {
        return None;
    };
    let claims = &context.authorizer.as_ref()?.jwt.as_ref()?.claims;
    CALLER_CLAIMS.iter().find_map(|name| claims.get(*name)).filter(|id| !id.is_empty()).cloned()
}
