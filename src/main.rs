#![forbid(unsafe_code)]
//! The `mqrtc` binary: parses the command line, starts logging, calls the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mqrtc::cli::{Cli, Command, HealthArgs, ServeArgs};
use mqrtc::config::{Config, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli
        .command
        .unwrap_or(Command::Serve(Box::default()))
        .admin()
    {
        Ok((cmd, target)) => return admin(cmd, &target),
        Err(other) => *other,
    };
    match command {
        Command::Serve(args) => serve(&args),
        Command::Controller(args) => controller(&args),
        Command::PrintConfig(args) => match load(&args) {
            Ok(cfg) => {
                print!("{}", cfg.to_toml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Healthcheck(args) => runtime_block_on(healthcheck(args)),
        Command::Bench(args) => runtime_block_on(mqrtc::bench::run(args)),
        Command::Certs { cmd, target } => match mqrtc::certs::command(&cmd, &target.data_dir) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mqrtc: {e}");
                ExitCode::from(1)
            }
        },
        Command::Backup(a) => report(mqrtc::backup::passphrase(a.passphrase_file.as_deref()).and_then(|p| {
            let keys = match (a.include_keys, p) {
                (true, None) => anyhow::bail!("--include-keys needs a passphrase: --passphrase-file FILE or MQRTC_BACKUP_PASSPHRASE"),
                (true, Some(p)) => Some(p),
                (false, _) => None,
            };
            mqrtc::backup::backup(&a.data_dir, &a.to, keys.as_deref())
        })),
        Command::Webhook { cmd, target } => report(mqrtc::webhooks::cli::run(&cmd, &target)),
        Command::Restore(a) => report(
            mqrtc::backup::passphrase(a.passphrase_file.as_deref())
                .and_then(|p| mqrtc::backup::restore(&a.from, &a.data_dir, p.as_deref())),
        ),
        Command::Device { target, run, .. } => runtime_block_on(async move {
            mqrtc::device::run(*run, target.json, &target.data_dir).await
        }),
        _ => unreachable!("provisioning commands were handled above"),
    }
}

/// Prints a command's summary, or its error (exit 1).
fn report(r: anyhow::Result<String>) -> ExitCode {
    match r {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mqrtc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn admin(cmd: mqrtc::admin::Admin, target: &mqrtc::admin::Target) -> ExitCode {
    match mqrtc::admin::run(cmd, target) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mqrtc: {e}");
            ExitCode::from(match e {
                mqrtc::store::StoreError::NotFound(_) => 3,
                mqrtc::store::StoreError::Conflict(_)
                | mqrtc::store::StoreError::Constraint(_)
                | mqrtc::store::StoreError::Invalid(_) => 2,
                _ => 1,
            })
        }
    }
}

fn load(args: &ServeArgs) -> Result<Config, ExitCode> {
    Config::load(args.config.as_deref(), &args.overrides()).map_err(|e| {
        eprintln!("mqrtc: {e}");
        ExitCode::from(2)
    })
}

fn serve(args: &ServeArgs) -> ExitCode {
    let cfg = match load(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(&cfg.log, cfg.log_format);
    let watchdog = Watchdog::arm(Duration::from_secs(cfg.startup.watchdog_secs));
    let rt = match server_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqrtc: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let running = mqrtc::app::start(cfg).await?;
        watchdog.disarm();
        shutdown_signal().await;
        tracing::info!("shutting down");
        running.stop().await;
        anyhow::Ok(())
    });
    exit(result)
}

/// Exits with the server's result. Storage threads may keep a runtime from
/// dropping, so the process exits explicitly.
fn exit(result: anyhow::Result<()>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mqrtc: {e:#}");
            std::process::exit(1)
        }
    }
}

/// `mqrtc controller`: the controller against an external broker.
fn controller(args: &mqrtc::upstream::cli::ControllerArgs) -> ExitCode {
    let cfg = match Config::load(args.serve.config.as_deref(), &args.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mqrtc: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg.log, cfg.log_format);
    let result = server_runtime()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let r = rt.block_on(mqrtc::upstream::run(cfg, shutdown_signal()));
            // A controller that failed did not stop its tasks: do not wait
            // for a database call stuck on a lost connection.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            r
        });
    exit(result)
}

/// The appliance's runtime. Tokio's LIFO slot runs the task woken last
/// first, so of two packets that arrive together on two connections the
/// later one is served first: a SUBSCRIBE followed at once by another
/// client's PUBLISH missed it 42 % of the time (`docs/conformance.md`).
/// Without the slot (an unstable tokio option, `.cargo/config.toml` turns
/// it on) packets are served closer to their arrival order.
fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    #[cfg(tokio_unstable)]
    b.disable_lifo_slot();
    #[cfg(not(tokio_unstable))]
    tracing::warn!("built without --cfg tokio_unstable (.cargo/config.toml): packets are served less in arrival order");
    b.build()
}

fn runtime_block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    init_logging("warn", LogFormat::Text);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqrtc: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqrtc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(a: HealthArgs) -> anyhow::Result<()> {
    let report = mqrtc::health::check(&a).await?;
    println!("{report}");
    Ok(())
}

fn init_logging(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // try_init also routes rmqtt's `log` records into tracing.
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => fmt.try_init(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Exits the process if start-up does not finish in time: a hang in a
/// plugin must not leave a half-started appliance that never answers.
struct Watchdog(std::sync::mpsc::Sender<()>);

impl Watchdog {
    fn arm(limit: Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "mqrtc: start-up did not finish within {} s (listeners not ready); exiting",
                    limit.as_secs()
                );
                std::process::exit(3);
            }
        });
        Watchdog(tx)
    }

    fn disarm(self) {
        let _ = self.0.send(());
    }
}
