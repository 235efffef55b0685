//! The commands, each written once against [`Backend`] and returning the text to print (a
//! table for people, or the API's JSON with `--json`). [`run`] picks the backend — the local
//! database, or the server named by `--server` — and dispatches.

mod access;
pub mod bundle;
pub mod check;
pub mod diff;
pub mod labels;
pub mod prompts;
pub mod render;
pub mod retire;
pub mod reviews;
pub mod serve;
pub mod stats;
pub mod test;

use promptvault_server::settings::Overrides;

use crate::{
    args::{Cli, Command},
    backend::{Backend, http::HttpBackend, local::LocalBackend},
    error::CliResult,
    output,
};

/// Runs one command line to completion.
pub async fn run(cli: Cli) -> CliResult<()> {
    let Cli { global, command } = cli;
    if let Command::Serve(args) = command {
        return serve::serve(&global, args).await;
    }
    let backend: Box<dyn Backend> = match &global.server {
        Some(server) => Box::new(HttpBackend::new(server, global.token.as_deref())?),
        None => Box::new(
            LocalBackend::open(
                global.config.as_deref(),
                &Overrides {
                    data_dir: global.data_dir.clone(),
                    database_url: global.database_url.clone(),
                    ..Default::default()
                },
            )
            .await?,
        ),
    };
    let result = execute(backend.as_ref(), command, global.json).await;
    backend.finish().await;
    result
}

async fn execute(backend: &dyn Backend, command: Command, json: bool) -> CliResult<()> {
    let text = match command {
        Command::Serve(_) => return Ok(()),
        Command::List(args) => prompts::list(backend, args, json).await?,
        Command::User(args) => access::user(backend, args, json).await?,
        Command::Token(args) => access::token(backend, args, json).await?,
        Command::Audit(args) => access::audit(backend, args, json).await?,
        Command::Keys(args) => access::keys(backend, args, json).await?,
        Command::Review(args) => reviews::review(backend, args, json).await?,
        Command::Show(args) => prompts::show(backend, args, json).await?,
        Command::Create(args) => prompts::create(backend, args, json).await?,
        Command::Version(args) => prompts::version(backend, args, json).await?,
        Command::Render(args) => render::render(backend, args, json).await?,
        Command::Label(args) => labels::label(backend, args, json).await?,
        Command::Link(args) => labels::link(backend, args, json).await?,
        Command::Diff(args) => diff::diff(backend, args, json).await?,
        Command::Check(args) => {
            // The findings are printed either way; an error finding then fails the command.
            let (text, failure) = check::check(backend, args, json).await?;
            output::emit(&text)?;
            return match failure {
                Some(error) => Err(error),
                None => Ok(()),
            };
        }
        Command::Test(args) => {
            // The results are printed either way; a failed case then fails the command.
            let (text, failure) = test::test(backend, args, json).await?;
            output::emit(&text)?;
            return match failure {
                Some(error) => Err(error),
                None => Ok(()),
            };
        }
        Command::Export(args) => bundle::export(backend, args, json).await?,
        Command::Import(args) => bundle::import(backend, args, json).await?,
        Command::Deprecate(args) => retire::deprecate(backend, args, json).await?,
        Command::Archive(args) => retire::archive(backend, args, json).await?,
        Command::Stats(args) => stats::stats(backend, args, json).await?,
    };
    output::emit(&text)
}
