//! The `snip` command: parse the command line, build, run.

#![warn(clippy::unwrap_used)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use snip::config::{Config, Overrides};
use tokio_util::sync::CancellationToken;

/// mimalloc: a server allocates and frees many small strings per request, and glibc's
/// allocator spends much of its time consolidating them (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "snip", version, about = "A self-hosted URL-shortening service")]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "SNIP_CONFIG")]
    config: Option<PathBuf>,
    /// Store URL (default sqlite://snip.db).
    #[arg(
        long = "database",
        global = true,
        env = "SNIP_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// A PostgreSQL shard for links; repeat for each (the first also holds users).
    #[arg(long = "shard", global = true)]
    shards: Vec<String>,
    /// Public base of short URLs (default http://LISTEN).
    #[arg(long, global = true, env = "SNIP_BASE_URL")]
    base_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "SNIP_LISTEN")]
        listen: Option<String>,
        /// Redis for the shared cache and rate limits, e.g. redis://127.0.0.1:6379.
        #[arg(long = "redis", env = "SNIP_REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
        /// NATS with JetStream for click events, e.g. nats://127.0.0.1:4222.
        #[arg(long = "nats", env = "SNIP_NATS_URL", hide_env_values = true)]
        nats_url: Option<String>,
        /// A MaxMind-format country database (.mmdb) for click countries.
        #[arg(long = "geoip", env = "SNIP_GEOIP")]
        geoip: Option<PathBuf>,
        /// What this node does: all, api, redirect, or worker (needs --nats).
        #[arg(long, env = "SNIP_ROLE", value_enum)]
        role: Option<snip::config::NodeRole>,
        /// Export traces over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318.
        #[arg(long = "otlp-endpoint", env = "SNIP_OTLP_ENDPOINT")]
        otlp_endpoint: Option<String>,
    },
    /// Apply the store's migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage shards.
    Shards {
        #[command(subcommand)]
        command: ShardsCommand,
    },
    /// Import links from another service's export file or running API. Links already
    /// here are skipped, so running it twice imports nothing twice.
    Import {
        /// The source's kind.
        #[arg(long, value_enum)]
        from: snip::transfer::SourceKind,
        /// A file, or for yourls and shlink the address of a running server (its
        /// yourls-api.php, or the Shlink address before /rest).
        source: String,
        /// The YOURLS API's signature token (for a running YOURLS).
        #[arg(long, hide_env_values = true, env = "SNIP_IMPORT_SIGNATURE")]
        signature: Option<String>,
        /// The Shlink API key (for a running Shlink).
        #[arg(long, hide_env_values = true, env = "SNIP_IMPORT_API_KEY")]
        api_key: Option<String>,
        /// Whose links they become (default: the first admin).
        #[arg(long, default_value = snip::app::users::BOOTSTRAP_EMAIL)]
        user: String,
        /// Check everything and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Ask a running node whether it is ready (`/readyz`): exit 0 when it is, 1 when not.
    /// For container health checks, so an image needs no curl.
    Healthcheck {
        /// The address to ask (default: http://LISTEN/readyz, with 127.0.0.1 for an
        /// address that listens on every interface).
        #[arg(long)]
        url: Option<String>,
    },
    /// Write a user's links as CSV or JSON (to standard output, or a file).
    Export {
        /// csv or json.
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Whose links (default: the first admin).
        #[arg(long, default_value = snip::app::users::BOOTSTRAP_EMAIL)]
        user: String,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// The formats `snip export` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
enum ShardsCommand {
    /// After adding or removing a shard: move every link to the shard the ring names, online.
    Rebalance,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Set a user's dashboard password, read from the first line of standard input, and
    /// end their sessions.
    SetPassword {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key for a user (created as a member if missing) and print it.
    Create {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
        /// Scopes, comma-separated (default links:read,links:write).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        /// Make the user an admin (created as one if missing); the key then gets every
        /// scope. The way back in when no admin key is left.
        #[arg(long)]
        admin: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut overrides = Overrides {
        database_url: cli.database_url.clone(),
        bootstrap_admin_key: std::env::var("SNIP_BOOTSTRAP_ADMIN_KEY").ok(),
        yourls_signature_secret: std::env::var("SNIP_YOURLS_SIGNATURE_SECRET").ok(),
        shards: cli.shards.clone(),
        base_url: cli.base_url.clone(),
        ..Overrides::default()
    };
    if let Command::Serve {
        listen,
        redis_url,
        nats_url,
        geoip,
        role,
        otlp_endpoint,
    } = &cli.command
    {
        overrides.otlp_endpoint = otlp_endpoint.clone();
        overrides.listen = listen.clone();
        overrides.redis_url = redis_url.clone();
        overrides.nats_url = nats_url.clone();
        overrides.geoip = geoip.clone();
        overrides.role = *role;
    }
    let config = Config::load(cli.config.as_deref(), overrides)?;
    let telemetry = snip::telemetry::init(config.otlp_endpoint.as_deref())?;
    match cli.command {
        Command::Serve { .. } => {
            let served = serve(config).await;
            telemetry.shutdown();
            served
        }
        Command::Migrate => {
            snip::store::AnyStore::from_config(&config)
                .await?
                .close()
                .await;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    email,
                    scopes,
                    name,
                    admin,
                },
        } => {
            let key = snip::server::create_key_for(&config, &email, scopes, name, admin).await?;
            println!("{}", key.expose());
            if let Some(secret) = config.signature_secret()? {
                eprintln!("YOURLS signature token: {}", key.signature_token(&secret));
            }
            Ok(())
        }
        Command::Users {
            command: UsersCommand::SetPassword { email },
        } => {
            if std::io::stdin().is_terminal() {
                eprintln!("New password for {email} (10 to 256 characters), then Enter:");
            }
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']);
            snip::server::set_password(&config, &email, password).await?;
            eprintln!("password set for {email}; their sessions are ended");
            Ok(())
        }
        Command::Import {
            from,
            source,
            signature,
            api_key,
            user,
            dry_run,
        } => {
            let secret = signature.or(api_key);
            let summary =
                snip::server::import(&config, from, &source, secret.as_deref(), &user, dry_run)
                    .await?;
            if dry_run {
                print!("dry run, nothing written: ");
            }
            print!("{summary}");
            Ok(())
        }
        Command::Export {
            format,
            user,
            output,
        } => {
            let json = matches!(format, ExportFormat::Json);
            let mut out: Box<dyn std::io::Write + Send> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let n = snip::server::export(&config, &user, json, &mut *out).await?;
            eprintln!("exported {n} links");
            Ok(())
        }
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| readyz_url(&config.listen));
            let status = snip::outgoing::Client::new()?
                .get_status(&url)
                .await
                .with_context(|| format!("asking {url}"))?;
            println!("{url}: {status}");
            if status != 200 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Shards {
            command: ShardsCommand::Rebalance,
        } => {
            let moved = snip::server::rebalance(&config).await?;
            println!("moved {moved} links");
            Ok(())
        }
    }
}

/// The readiness address of a node listening on `listen`.
fn readyz_url(listen: &str) -> String {
    let local = match listen.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_owned(),
    };
    format!("http://{local}/readyz")
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let app = snip::App::build(config, Arc::new(snip::clock::SystemClock)).await?;
    if let Some(key) = app.new_admin_key() {
        eprintln!(
            "Created the first admin (admin@localhost). Its API key, shown only this once:\n\n    {}\n",
            key.expose()
        );
    }
    if let Some(link) = app.new_admin_sign_in() {
        eprintln!(
            "To set the admin's dashboard password, open this link within 15 minutes:\n\n    {link}\n"
        );
    }
    // Signal handlers are in place before "listening" is announced, so a supervisor (or a
    // test) that stops snip right after that line gets a graceful shutdown.
    let shutdown = CancellationToken::new();
    let signals = Signals::install()?;
    tokio::spawn(signals.cancel_on_first(shutdown.clone()));
    tracing::info!(addr = %listener.local_addr()?, "listening");
    app.serve(listener, shutdown).await
}

/// SIGTERM and SIGINT (Ctrl-C), registered eagerly.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Cancels `token` on the first signal.
    async fn cancel_on_first(mut self, token: CancellationToken) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested");
        token.cancel();
    }
}
