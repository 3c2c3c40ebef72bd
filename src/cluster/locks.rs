//! Cluster-wide claims: of the instances that ask for the same name within its lifetime, one
//! gets it. Every instance reads the JSON channels, runs the job schedule and sees a dead
//! instance's heartbeat lapse; a claim makes one of them act.

use std::sync::LazyLock;
use std::time::Duration;

use super::Bus;

/// How long a claim on a JSON channel message holds: byte-identical messages on one channel
/// within this window count as one.
const MESSAGE_CLAIM: Duration = Duration::from_secs(5);

/// Claims the `n`th occurrence of a message: true when `n` is above the highest occurrence
/// claimed so far (KEYS[1]), which it becomes, kept for ARGV[2] ms.
const CLAIM_OCCURRENCE: &str = r"
local claimed = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= claimed then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

static OCCURRENCE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CLAIM_OCCURRENCE));

impl Bus {
    /// True for the first instance to claim `name` within `ttl`. When Redis cannot say, true:
    /// acting twice is better than never.
    pub async fn claim(&self, name: &str, ttl: Duration) -> bool {
        let claimed: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(self.inner.keys.claim(name))
            .arg(&self.inner.instance)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.connection())
            .await;
        claimed.map(|reply| reply.is_some()).unwrap_or(true)
    }

    /// True for exactly one instance of those that ask about the same message of `channel`.
    pub async fn claim_message(&self, channel: &str, payload: &[u8]) -> bool {
        let digest = sha1_smol::Sha1::from(payload).digest().to_string();
        self.claim(&format!("{channel}:{digest}"), MESSAGE_CLAIM).await
    }

    /// True for exactly one instance of those that saw the same message `occurrence` times
    /// (each counts its own): messages without an id of their own (a Node server's broadcasts),
    /// where byte-identical ones may legitimately follow each other. An instance that started
    /// counting late (it joined meanwhile) is below the others and never wins; the highest claim
    /// is kept for `ttl`, which must be shorter than the time an instance keeps its counts.
    pub async fn claim_occurrence(&self, name: &str, occurrence: u64, ttl: Duration) -> bool {
        let claimed: redis::RedisResult<i64> = OCCURRENCE_SCRIPT
            .key(self.inner.keys.claim(name))
            .arg(occurrence)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.connection())
            .await;
        claimed.map(|won| won == 1).unwrap_or(true)
    }
}
