//! The example services' streaming methods: `FriendServiceRpc.WatchFriends` (server
//! streaming) and `UserServiceRpc.UploadAvatar` (client streaming).
//!
//! Neither spawns a task: a watch is a stream the provider polls while it sends the replies,
//! so the caller's cancel (or the deadline) drops it and everything it holds; an upload is
//! the handler's own loop over the chunks. [`open_watches`] counts the watches alive in this
//! process, which shows that a cancelled one is gone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mprpc::stream::{BoxStream, Streaming};
use mprpc::Status;

use crate::fixbug::friend_update::Kind;
use crate::fixbug::{
    AvatarChunk, FriendUpdate, ResultCode, UploadAvatarResponse, WatchFriendsRequest,
};

/// Every user's friends, as `GetFriendsList` answers.
pub const FRIENDS: [&str; 3] = ["gao yang", "liu hong", "wang shuo"];

/// The largest avatar `UploadAvatar` accepts, in bytes (4 MiB).
pub const MAX_AVATAR_BYTES: u64 = 4 << 20;

/// The time between two presence changes when the request leaves it at 0.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// Watch streams alive in this process.
static OPEN_WATCHES: AtomicUsize = AtomicUsize::new(0);

/// How many `WatchFriends` streams are alive in this process: back to 0 once their callers
/// have cancelled them (or they have ended).
pub fn open_watches() -> usize {
    OPEN_WATCHES.load(Ordering::SeqCst)
}

/// One watch's state, counted in [`OPEN_WATCHES`] from its creation to its drop.
struct Watch {
    userid: u32,
    interval: Duration,
    max_updates: u64,
    /// Updates sent so far.
    sent: u64,
}

impl Watch {
    fn new(request: &WatchFriendsRequest) -> Watch {
        OPEN_WATCHES.fetch_add(1, Ordering::SeqCst);
        let interval = match request.interval_ms {
            0 => DEFAULT_INTERVAL,
            ms => Duration::from_millis(u64::from(ms)),
        };
        Watch {
            userid: request.userid,
            interval,
            max_updates: u64::from(request.max_updates),
            sent: 0,
        }
    }

    /// The next update, after a wait for a presence change; `None` once `max_updates` are
    /// sent.
    async fn next(&mut self) -> Option<FriendUpdate> {
        if self.max_updates != 0 && self.sent >= self.max_updates {
            return None;
        }
        let n = self.sent as usize;
        let (kind, name) = match n.checked_sub(FRIENDS.len()) {
            // First the current friends, at once.
            None => (Kind::Friend, FRIENDS[n]),
            // Then one friend after another comes online, then goes offline, and so on.
            Some(change) => {
                tokio::time::sleep(self.interval).await;
                let round = change / FRIENDS.len();
                let kind = if round % 2 == 0 {
                    Kind::Online
                } else {
                    Kind::Offline
                };
                (kind, FRIENDS[change % FRIENDS.len()])
            }
        };
        self.sent += 1;
        Some(FriendUpdate {
            kind: kind.into(),
            name: name.as_bytes().to_vec(),
            seq: self.sent,
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        OPEN_WATCHES.fetch_sub(1, Ordering::SeqCst);
        let finished = self.max_updates != 0 && self.sent >= self.max_updates;
        tracing::debug!(
            userid = self.userid,
            sent = self.sent,
            finished,
            "WatchFriends ended"
        );
    }
}

/// `WatchFriends`: the user's friends, then their presence changes, every `interval_ms`.
pub fn watch_friends(request: WatchFriendsRequest) -> BoxStream<FriendUpdate> {
    tracing::debug!(
        userid = request.userid,
        interval_ms = request.interval_ms,
        max_updates = request.max_updates,
        "WatchFriends"
    );
    let watch = Watch::new(&request);
    Box::pin(futures_util::stream::unfold(
        watch,
        |mut watch| async move {
            let update = watch.next().await?;
            Some((Ok(update), watch))
        },
    ))
}

/// `UploadAvatar`: reads the chunks, counting bytes against [`MAX_AVATAR_BYTES`], and
/// answers with the image's size and SHA-256.
pub async fn upload_avatar(
    mut chunks: Streaming<AvatarChunk>,
) -> Result<UploadAvatarResponse, Status> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut userid, mut size, mut count) = (0, 0u64, 0u64);
    // A failure of the stream itself (the caller cancelled, the deadline) ends the call.
    while let Some(chunk) = chunks.message().await? {
        if count == 0 {
            userid = chunk.userid;
        }
        count += 1;
        size += chunk.data.len() as u64;
        if size > MAX_AVATAR_BYTES {
            // Answered at once: the caller stops sending the rest.
            tracing::debug!(userid, size, "UploadAvatar refused: too large");
            return Err(Status::invalid_argument(format!(
                "the avatar is larger than the limit of {MAX_AVATAR_BYTES} bytes \
                 ({size} bytes received in {count} chunks)"
            )));
        }
        digest.update(&chunk.data);
    }
    if size == 0 {
        return Err(Status::invalid_argument("the avatar is empty"));
    }
    let sha256 = hex(digest.finish().as_ref());
    tracing::debug!(userid, size, chunks = count, %sha256, "UploadAvatar");
    Ok(UploadAvatarResponse {
        result: Some(ResultCode::default()),
        userid,
        size,
        chunks: count,
        sha256,
    })
}

/// The SHA-256 of `data` in lowercase hex, as `UploadAvatar` answers it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
