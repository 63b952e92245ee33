//! The built-in app's rule for the HTTP publish API (`POST /publish/{room}`, served by
//! the shard: see [`crate::shard::http_publish`]): the tokens of [`RoomAccess`] decide
//! who may publish. With no token configured anyone may; else the publish token (or,
//! with only `--subscribe-token` set, the subscribe token, as on `/ws/{room}`) must
//! be presented as `Authorization: Bearer …` or `?token=…`: none → 401 (the response
//! carries `WWW-Authenticate: Bearer`, RFC 6750 §3), a token that may not publish →
//! 403.

use crate::handler::{Rejection, Upgrade, UpgradeRequest};

use super::token;
use super::RoomAccess;

impl RoomAccess {
    /// The upgrade hook's answer to a publish request (see the module doc).
    pub fn publish_access(&self, request: &UpgradeRequest) -> Upgrade {
        match self.access(request) {
            Err(rejection) => Upgrade::Reject(rejection),
            Ok(Some(identity)) if !identity.can_publish => {
                Upgrade::Reject(match token::presented(request) {
                    None => Rejection {
                        status: 401,
                        reason: "publish token required",
                    },
                    Some(_) => Rejection {
                        status: 403,
                        reason: "not allowed to publish",
                    },
                })
            }
            Ok(Some(identity)) => Upgrade::AcceptAs(identity),
            Ok(None) => Upgrade::Accept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::token::{request_for_tests as request, Token};

    fn status(access: &RoomAccess, query: Option<&str>, auth: Option<&str>) -> u16 {
        match access.publish_access(&request(query, auth)) {
            Upgrade::Reject(r) => r.status,
            Upgrade::Accept | Upgrade::AcceptAs(_) => 202,
        }
    }

    #[test]
    fn publishing_needs_a_token_that_may_publish() {
        let token = |s| Some(Token::parse(s).unwrap());
        assert_eq!(status(&RoomAccess::default(), None, None), 202);
        let both = RoomAccess {
            publish_token: token("p"),
            subscribe_token: token("s"),
        };
        assert_eq!(status(&both, None, None), 401);
        assert_eq!(status(&both, Some("token=s"), None), 403);
        assert_eq!(status(&both, None, Some("Bearer x")), 403);
        assert_eq!(status(&both, None, Some("Bearer p")), 202);
        let publish_only = RoomAccess {
            publish_token: token("p"),
            subscribe_token: None,
        };
        assert_eq!(status(&publish_only, None, None), 401);
        assert_eq!(status(&publish_only, Some("token=p"), None), 202);
        let subscribe_only = RoomAccess {
            publish_token: None,
            subscribe_token: token("s"),
        };
        assert_eq!(status(&subscribe_only, Some("token=s"), None), 202);
        assert_eq!(status(&subscribe_only, None, None), 401);
    }
}
