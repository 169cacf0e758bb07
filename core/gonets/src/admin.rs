//! The tools that talk to a running hub (`status`, `queues`) and `certs dev`.

use clap::Args;
use gonets_client::glommio::Client;
use gonets_client::{ClientConfig, ClientSecurity};
use gonets_engine::registry::Registry;
use gonets_server::tls;
use gonets_types::{DataKindId, MessageId, ParticipantId, QueueId};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How the tools reach a hub.
#[derive(Args, Debug)]
pub(crate) struct ConnectArgs {
    /// The hub's address.
    #[arg(long, default_value_t = crate::default_addr())]
    addr: SocketAddr,
    /// Participant to act as (an operator reads every history and queue).
    #[arg(long = "as", default_value = "OPERATOR")]
    participant: String,
    /// Development certificates (made by `gonets serve` or `gonets certs dev`).
    #[arg(long, default_value = "gonets-data/dev-certs")]
    certs: PathBuf,
    /// Name on the server's certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Plain TCP with this development token instead of TLS (server in dev-token mode).
    #[arg(long)]
    dev_token: Option<String>,
    /// Registry file (for `queues`: which queues exist; default embedded).
    #[arg(long)]
    registry: Option<PathBuf>,
}

type Failure = Box<dyn std::error::Error>;

/// Connects as configured and runs `work` on a glommio executor on this thread.
fn with_client<F, Fut>(args: &ConnectArgs, work: F) -> Result<(), Failure>
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Failure>>,
{
    let security = match &args.dev_token {
        Some(token) => ClientSecurity::DevToken {
            participant: args.participant.clone(),
            token: token.clone(),
        },
        None => {
            let files = tls::DevCerts::layout(&args.certs, &[args.participant.as_str()])
                .client_files(&args.participant)
                .expect("the layout names the participant");
            ClientSecurity::Tls {
                config: tls::client_config(&files)?,
                server_name: args.server_name.clone(),
            }
        }
    };
    let config = ClientConfig::new(args.addr, security);
    let executor = glommio::LocalExecutorBuilder::default()
        .make()
        .map_err(|e| format!("cannot start a glommio executor: {e}"))?;
    executor.run(async move {
        let client = Client::connect(config)
            .await
            .map_err(|e| format!("cannot reach the hub: {e}"))?;
        work(client).await
    })
}

pub(crate) fn status(id: &str, args: &ConnectArgs) -> Result<(), Failure> {
    let id: MessageId = id
        .parse()
        .map_err(|_| format!("{id:?} is not a message id (a UUID)"))?;
    with_client(args, move |client| async move {
        let s = client.status(id).await?;
        println!("request  {}", s.request_id);
        if let Some(a) = &s.answer_id {
            println!("answer   {a}");
        }
        println!("kind     {}", s.kind);
        println!("consumer {}  provider {}", s.consumer, s.provider);
        println!("deadline {} (unix ms)", s.deadline_ms);
        let start = s.events.first().map_or(0, |e| e.time_ms);
        for e in &s.events {
            let count = if e.count > 0 {
                format!(" #{}", e.count)
            } else {
                String::new()
            };
            println!(
                "  +{:>8} ms  {}{}  (unix ms {})",
                e.time_ms.saturating_sub(start),
                e.kind,
                count,
                e.time_ms
            );
        }
        Ok(())
    })
}

pub(crate) fn queues(args: &ConnectArgs) -> Result<(), Failure> {
    let registry = match &args.registry {
        Some(p) => Registry::from_file(p)?,
        None => Registry::embedded_default(),
    };
    let mut queues: Vec<QueueId> = registry
        .kinds()
        .map(|k| QueueId::Requests(DataKindId::new(k.id.as_str())))
        .collect();
    queues.extend(
        registry
            .participants()
            .map(|p| QueueId::Answers(ParticipantId::new(p.id.as_str()))),
    );
    with_client(args, move |client| async move {
        println!(
            "{:<48} {:>10} {:>10} {:>14}",
            "queue", "depth", "in flight", "oldest age ms"
        );
        for q in &queues {
            match client.queue_stats(q).await {
                Ok(s) => println!(
                    "{:<48} {:>10} {:>10} {:>14}",
                    q.to_string(),
                    s.depth,
                    s.in_flight,
                    s.oldest_age_ms
                ),
                Err(e) => println!("{:<48} {e}", q.to_string()),
            }
        }
        Ok(())
    })
}

pub(crate) fn certs_dev(dir: &Path, registry: Option<&Path>) -> Result<(), Failure> {
    let registry = match registry {
        Some(p) => Registry::from_file(p)?,
        None => Registry::embedded_default(),
    };
    let ids: Vec<String> = registry.participants().map(|p| p.id.to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let certs = tls::make_dev_certs(dir, &refs, &["localhost", "127.0.0.1"])?;
    println!("development CA     {}", certs.ca_cert.display());
    println!(
        "server certificate {} (localhost, 127.0.0.1)",
        certs.server_cert.display()
    );
    for c in &certs.clients {
        println!("client {:<11} {}", c.participant, c.cert.display());
    }
    println!(
        "for development only: the CA key is {}",
        certs.ca_key.display()
    );
    Ok(())
}
