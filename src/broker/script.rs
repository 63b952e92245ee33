//! A room's names in Redis, and the publish script used with `--history`.
//!
//! Every name of a room starts with the hash tag `{PREFIX:ROOM}`, so in a Redis
//! Cluster they all hash to one slot (Redis Cluster spec, "Hash tags"):
//! - the channel: `{PREFIX:ROOM}`;
//! - the counter: `{PREFIX:ROOM}:seq` (the last number issued, `INCR`);
//! - the stream: `{PREFIX:ROOM}:log` (entry id `SEQ-1`, field `m` = the envelope,
//!   at most `--history` entries: `XADD … MAXLEN N`);
//! - the epoch: `{PREFIX:ROOM}:epoch` (set when the counter starts again at 1 or the
//!   epoch is missing: Redis lost the room's data, and numbers restart).
//!
//! [`PUBLISH_SCRIPT`] ([`SPUBLISH_SCRIPT`] on a Redis Cluster) does it all in one
//! command (`EVALSHA`), atomically: number, keep, publish.

/// The channel of `room`.
pub fn channel(prefix: &str, room: &str) -> String {
    format!("{{{prefix}:{room}}}")
}

/// The room a channel of ours names (`None`: not one of ours).
pub fn room_of<'a>(prefix: &str, channel: &'a str) -> Option<&'a str> {
    channel
        .strip_prefix('{')?
        .strip_prefix(prefix)?
        .strip_prefix(':')?
        .strip_suffix('}')
}

/// `(counter, stream, epoch)` keys of `room`.
pub fn keys(prefix: &str, room: &str) -> [String; 3] {
    let tag = channel(prefix, room);
    [
        format!("{tag}:seq"),
        format!("{tag}:log"),
        format!("{tag}:epoch"),
    ]
}

/// The publish script's body; `$PUBLISH` is the publish command.
macro_rules! publish_script {
    ($publish:literal) => {
        concat!(
            r#"
local seq = redis.call('INCR', KEYS[1])
local epoch = redis.call('GET', KEYS[3])
if seq == 1 or not epoch then
  redis.call('DEL', KEYS[2])
  epoch = ARGV[4]
  redis.call('SET', KEYS[3], epoch)
end
local env = 'RC1 ' .. ARGV[1] .. ' ' .. seq .. ' ' .. epoch .. ' ' .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-1', 'm', env)
redis.call('"#,
            $publish,
            r#"', ARGV[5], env)
return seq
"#
        )
    };
}

/// The publish script for one Redis. KEYS: counter, stream, epoch. ARGV: kind
/// (`t`/`b`), the envelope's tail ([`super::envelope::tail`]), the stream's length cap,
/// an epoch to use if the room has none, the channel. Returns the number.
pub const PUBLISH_SCRIPT: &str = publish_script!("PUBLISH");

/// [`PUBLISH_SCRIPT`] for a Redis Cluster: publishes with `SPUBLISH` (sharded pub/sub,
/// Redis 7), which the slot's shard alone delivers. The channel and the keys share
/// the room's hash tag, so the script touches one slot.
pub const SPUBLISH_SCRIPT: &str = publish_script!("SPUBLISH");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_one_hash_tag_and_the_channel_maps_back() {
        let c = channel("rc", "a:b}");
        assert_eq!(c, "{rc:a:b}}");
        assert_eq!(room_of("rc", &c), Some("a:b}"));
        assert_eq!(room_of("other", &c), None);
        for k in keys("rc", "room") {
            assert!(k.starts_with("{rc:room}:"));
        }
    }

    #[test]
    fn the_cluster_script_differs_only_in_the_publish_command() {
        assert!(SPUBLISH_SCRIPT.contains("redis.call('SPUBLISH', ARGV[5], env)"));
        assert_eq!(
            SPUBLISH_SCRIPT.replace("SPUBLISH", "PUBLISH"),
            PUBLISH_SCRIPT
        );
    }
}
