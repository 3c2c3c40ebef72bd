//! Cluster-wide claims: of the instances that ask for the same name within its lifetime, one
//! gets it. Every instance reads the JSON channels, runs the job schedule and sees a dead
//! instance's heartbeat lapse; a claim makes one of them act.

use std::time::Duration;

use super::Bus;

/// How long a claim on a JSON channel message holds: byte-identical messages on one channel
/// within this window count as one.
const MESSAGE_CLAIM: Duration = Duration::from_secs(5);

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
}
