//! The shard-aware client: one connection per shard, to each shard's own
//! port, and every operation sent to the shard that owns its queue or
//! message, so no command crosses cores inside the hub.

use crate::{commands, Client, ClientConfig, ClientError, ClientSubscription, Message, Runtime};
use bytes::Bytes;
use gonets_types::ids::{MessageId, QueueId};
use gonets_types::refusal::RefusalCode;
use gonets_types::{
    Accepted, Command, HubError, NewRequest, QueueStats, Reply, ReplyContent, StatusView,
};
use std::net::SocketAddr;
use std::time::Duration;

/// Connections to every shard's own port (see [`ShardAwareClient::connect`]).
pub struct ShardAwareClient<R: Runtime> {
    /// By shard.
    shards: Vec<Client<R>>,
}

impl<R: Runtime> Clone for ShardAwareClient<R> {
    fn clone(&self) -> Self {
        ShardAwareClient {
            shards: self.shards.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for ShardAwareClient<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardAwareClient")
            .field("shards", &self.shards)
            .finish()
    }
}

impl<R: Runtime> ShardAwareClient<R> {
    /// Connects to `config.addr` (any port of the hub), learns the shard
    /// ports from its hello, and connects to each. The server must be
    /// started with `shard_port_base`.
    pub async fn connect(config: ClientConfig) -> Result<ShardAwareClient<R>, ClientError> {
        let first = Client::<R>::connect(config.clone()).await?;
        let hello = first
            .hello()
            .ok_or_else(|| ClientError::Disconnected("no hello".into()))?;
        first.close();
        if hello.shard_ports.len() != usize::from(hello.shards) {
            return Err(ClientError::BadReply(format!(
                "the server announces {} shard ports for {} shards; start it with shard_port_base",
                hello.shard_ports.len(),
                hello.shards
            )));
        }
        let mut shards = Vec::with_capacity(hello.shard_ports.len());
        for port in hello.shard_ports {
            let mut c = config.clone();
            c.addr = SocketAddr::new(config.addr.ip(), port);
            shards.push(Client::connect(c).await?);
        }
        Ok(ShardAwareClient { shards })
    }

    /// Closes every shard's connection (see [`Client::disconnect`]).
    pub fn disconnect(&self) {
        for c in &self.shards {
            c.disconnect();
        }
    }

    /// Shards of the hub.
    pub fn shard_count(&self) -> u16 {
        self.shards.len() as u16
    }

    /// The connection to the shard owning `queue`.
    pub fn for_queue(&self, queue: &QueueId) -> &Client<R> {
        &self.shards[usize::from(queue.shard(self.shard_count()))]
    }

    /// The connection to the shard owning message `id` (its id names it).
    pub fn for_message(&self, id: MessageId) -> Result<&Client<R>, ClientError> {
        self.shards
            .get(usize::from(id.shard()))
            .ok_or(ClientError::Hub(gonets_types::HubError::NotFound))
    }

    /// The connection to the shard that owns `command` (its queue, or the
    /// shard its message id names: `NotFound` for an id of no shard here).
    pub fn owner(&self, command: &Command) -> Result<&Client<R>, ClientError> {
        command
            .shard(self.shard_count())
            .and_then(|s| self.shards.get(usize::from(s)))
            .ok_or(ClientError::Hub(HubError::NotFound))
    }

    /// See [`Client::execute`]: on the connection to the shard that owns
    /// `command`.
    pub async fn execute(&self, command: Command) -> Result<Reply, ClientError> {
        self.owner(&command)?.execute(command).await
    }

    /// A typed method: `command` on its shard's connection.
    async fn run<T: ReplyContent>(&self, command: Command) -> Result<T, ClientError> {
        self.owner(&command)?.run(command).await
    }

    /// See [`Client::send_request`].
    pub async fn send_request(&self, request: NewRequest) -> Result<Accepted, ClientError> {
        self.run(Command::SendRequest(request)).await
    }

    /// See [`Client::call`].
    pub async fn call(&self, request: NewRequest) -> Result<Message, ClientError> {
        self.run(Command::Call(request)).await
    }

    /// See [`Client::fetch`].
    pub async fn fetch(
        &self,
        queue: &QueueId,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<Message>, ClientError> {
        self.run(commands::fetch(queue, max, wait)).await
    }

    /// See [`Client::subscribe`].
    pub async fn subscribe(
        &self,
        queue: &QueueId,
        credits: u32,
    ) -> Result<ClientSubscription<R>, ClientError> {
        self.for_queue(queue).subscribe(queue, credits).await
    }

    /// See [`Client::ack`] (sent on the connection that fetched it).
    pub async fn ack(&self, m: &Message) -> Result<(), ClientError> {
        self.run(commands::ack(m)).await
    }

    /// See [`Client::send_requests`] (on the connection of the batch's kind).
    pub async fn send_requests(
        &self,
        requests: Vec<NewRequest>,
    ) -> Result<gonets_types::AcceptedMany, ClientError> {
        self.run(Command::SendRequests(requests)).await
    }

    /// See [`Client::ack_many`] (sent on the connection that fetched them).
    pub async fn ack_many(
        &self,
        messages: &[Message],
    ) -> Result<gonets_types::AckedMany, ClientError> {
        self.run(commands::ack_many(messages)?).await
    }

    /// See [`Client::nack_many`] (sent on the connection that fetched them).
    pub async fn nack_many(
        &self,
        messages: &[Message],
        delay: Duration,
    ) -> Result<gonets_types::AckedMany, ClientError> {
        self.run(commands::nack_many(messages, delay)?).await
    }

    /// See [`Client::nack`].
    pub async fn nack(&self, m: &Message, delay: Duration) -> Result<(), ClientError> {
        self.run(commands::nack(m, delay)).await
    }

    /// See [`Client::send_response`].
    pub async fn send_response(
        &self,
        request_id: MessageId,
        payload: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        self.send_response_attached(request_id, payload, Vec::new())
            .await
    }

    /// See [`Client::send_response_attached`].
    pub async fn send_response_attached(
        &self,
        request_id: MessageId,
        payload: impl Into<Bytes>,
        attachments: Vec<gonets_types::AttachmentRef>,
    ) -> Result<(), ClientError> {
        self.run(Command::SendResponse {
            request_id,
            payload: payload.into(),
            attachments,
        })
        .await
    }

    /// See [`Client::send_refusal`].
    pub async fn send_refusal(
        &self,
        request_id: MessageId,
        code: RefusalCode,
        reason: &str,
    ) -> Result<(), ClientError> {
        self.run(commands::refusal(request_id, code, reason)).await
    }

    /// See [`Client::status`].
    pub async fn status(&self, id: MessageId) -> Result<StatusView, ClientError> {
        self.run(Command::Status { id }).await
    }

    /// See [`Client::queue_stats`].
    pub async fn queue_stats(&self, queue: &QueueId) -> Result<QueueStats, ClientError> {
        let queue = queue.clone();
        self.run(Command::QueueStats { queue }).await
    }
}
