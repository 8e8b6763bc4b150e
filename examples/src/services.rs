//! The example services' business logic.
//!
//! The streaming methods are in [`crate::streams`].
//!
//! Each call is logged at debug level: at info a busy provider writes gigabytes of logs.
//! `RUST_LOG=info,mprpc_examples=debug` shows the calls.

use std::collections::HashMap;
use std::sync::Mutex;

use mprpc::stream::{BoxStream, Streaming};
use mprpc::{Request, Status};

use crate::fixbug::friend_service_rpc_server::FriendServiceRpc;
use crate::fixbug::user_service_rpc_server::UserServiceRpc;
use crate::fixbug::{
    AvatarChunk, FriendUpdate, GetFriendsListRequest, GetFriendsListResponse, LoginRequest,
    LoginResponse, RegisterRequest, RegisterResponse, ResultCode, UploadAvatarResponse,
    WatchFriendsRequest,
};
use crate::streams;

/// A registered user.
struct User {
    #[allow(dead_code)]
    id: u32,
    pwd: Vec<u8>,
}

/// Users kept in memory: `Register` adds one, `Login` checks a name and password.
#[derive(Default)]
pub struct UserService {
    /// By name.
    users: Mutex<HashMap<Vec<u8>, User>>,
}

impl UserServiceRpc for UserService {
    async fn login(&self, request: Request<LoginRequest>) -> Result<LoginResponse, Status> {
        let req = request.into_inner();
        let users = self
            .users
            .lock()
            .map_err(|_| Status::internal("user table poisoned"))?;
        let success = users.get(&req.name).is_some_and(|user| user.pwd == req.pwd);
        tracing::debug!(name = %String::from_utf8_lossy(&req.name), success, "Login");
        let result = if success {
            ok()
        } else {
            ResultCode {
                errcode: 1,
                errmsg: b"unknown user or wrong password".to_vec(),
            }
        };
        Ok(LoginResponse {
            result: Some(result),
            success,
        })
    }

    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<RegisterResponse, Status> {
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name must not be empty"));
        }
        let mut users = self
            .users
            .lock()
            .map_err(|_| Status::internal("user table poisoned"))?;
        tracing::debug!(id = req.id, name = %String::from_utf8_lossy(&req.name), "Register");
        if users.contains_key(&req.name) {
            return Ok(RegisterResponse {
                result: Some(ResultCode {
                    errcode: 2,
                    errmsg: b"name already taken".to_vec(),
                }),
                success: false,
            });
        }
        users.insert(
            req.name,
            User {
                id: req.id,
                pwd: req.pwd,
            },
        );
        Ok(RegisterResponse {
            result: Some(ok()),
            success: true,
        })
    }

    async fn upload_avatar(
        &self,
        request: Request<Streaming<AvatarChunk>>,
    ) -> Result<UploadAvatarResponse, Status> {
        streams::upload_avatar(request.into_inner()).await
    }
}

impl std::fmt::Debug for UserService {
    /// Nothing of the users: their passwords must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserService").finish_non_exhaustive()
    }
}

/// Friends lists; every user has the same three friends, as in the original.
#[derive(Debug, Default)]
pub struct FriendService;

impl FriendServiceRpc for FriendService {
    type WatchFriendsStream = BoxStream<FriendUpdate>;

    async fn get_friends_list(
        &self,
        request: Request<GetFriendsListRequest>,
    ) -> Result<GetFriendsListResponse, Status> {
        let userid = request.get_ref().userid;
        tracing::debug!(userid, "GetFriendsList");
        Ok(GetFriendsListResponse {
            result: Some(ok()),
            friends: streams::FRIENDS
                .iter()
                .map(|f| f.as_bytes().to_vec())
                .collect(),
        })
    }

    async fn watch_friends(
        &self,
        request: Request<WatchFriendsRequest>,
    ) -> Result<Self::WatchFriendsStream, Status> {
        Ok(streams::watch_friends(request.into_inner()))
    }
}

fn ok() -> ResultCode {
    ResultCode {
        errcode: 0,
        errmsg: Vec::new(),
    }
}
