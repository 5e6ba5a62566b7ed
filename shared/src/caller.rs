//! Who is calling. In AWS the HTTP API's JWT authorizer has verified the token and puts its
//! claims in the request context; the caller is the token's client id. The local stack puts the
//! caller of a local API key in the same place, so handlers have one way to ask.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use std::collections::{BTreeSet, HashMap};

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

/// What each caller is granted (`ICP_VENDOR_GRANTS`' vendor IDs, `ECF_LOCATION_GRANTS`' location
/// ids): `caller=A|B` pairs separated by commas; `*` grants everything. Values compare exactly;
/// a caller listed twice gets the union; an unlisted caller gets nothing, so an empty list
/// refuses everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants<T: Ord>(HashMap<String, Grant<T>>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant<T: Ord> {
    Every,
    Only(BTreeSet<T>),
}

impl<T: Ord> Default for Grants<T> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<T: Ord> Grants<T> {
    /// Reads `text`, each granted value through `value` (which says why one is refused).
    pub fn parse(text: &str, value: impl Fn(&str) -> Result<T, String>) -> Result<Self, String> {
        let mut grants: HashMap<String, Grant<T>> = HashMap::new();
        for (index, entry) in text.split(',').map(str::trim).enumerate().filter(|(_, e)| !e.is_empty()) {
            let position = index + 1;
            let (caller, values) =
                entry.split_once('=').ok_or_else(|| format!("entry {position} is not `caller=A|B` or `caller=*`"))?;
            let caller = caller.trim();
            if caller.is_empty() {
                return Err(format!("entry {position} names no caller"));
            }
            let mut grant = Grant::Only(BTreeSet::new());
            for text in values.split('|').map(str::trim) {
                if text == "*" {
                    grant = Grant::Every;
                    continue;
                }
                let parsed =
                    value(text).map_err(|reason| format!("entry {position} (caller {caller}): {text:?}: {reason}"))?;
                if let Grant::Only(set) = &mut grant {
                    set.insert(parsed);
                }
            }
            let merged = match (grants.remove(caller), grant) {
                (Some(Grant::Every), _) | (_, Grant::Every) => Grant::Every,
                (Some(Grant::Only(mut old)), Grant::Only(new)) => {
                    old.extend(new);
                    Grant::Only(old)
                }
                (None, grant) => grant,
            };
            grants.insert(caller.to_owned(), merged);
        }
        Ok(Self(grants))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, caller: &str, value: &T) -> bool {
        match self.0.get(caller) {
            Some(Grant::Every) => true,
            Some(Grant::Only(values)) => values.contains(value),
            None => false,
        }
    }
}
