//! The apps this binary knows, by the name configs give in `app:`.
//!
//! Adding an app is adding its crate as a dependency and one arm in each function here.

use std::fmt::Write as _;
use std::path::Path;

use hopline_model::{ConfigError, Ends, Message, PipelineConfig, Registry};
use hopline_runtime::adapters::LineEnds;
use hopline_runtime::{Progress, RunError, RunOptions, RunReport, run_pipeline};

const APPS: &[&str] = &[hopline_fundload::APP, hopline_probe::APP, hopline_observer::APP];

fn unknown_app(config: &PipelineConfig) -> RunError {
    RunError::Config(ConfigError {
        origin: config.origin.clone(),
        path: "app".into(),
        pos: Some(config.app_pos),
        message: format!("unknown app `{}`; expected one of: {}", config.app, APPS.join(", ")),
    })
}

/// Runs a config with its app's nodes.
pub fn run(
    config: &PipelineConfig,
    base_dir: &Path,
    options: &RunOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunReport, RunError> {
    match config.app.as_str() {
        hopline_fundload::APP => {
            run_pipeline(&hopline_fundload::registry(), &LineEnds, config, base_dir, options, progress)
        }
        hopline_probe::APP => run_pipeline(&hopline_probe::registry(), &LineEnds, config, base_dir, options, progress),
        hopline_observer::APP => run_pipeline(
            &hopline_observer::registry(),
            &hopline_observer::ObserverEnds::default(),
            config,
            base_dir,
            options,
            progress,
        ),
        _ => Err(unknown_app(config)),
    }
}

/// The worker role: reads the bootstrap from stdin, runs the group, returns the exit code.
pub fn run_worker() -> i32 {
    use hopline_runtime::multiprocess::{Bootstrap, run_worker, worker::EXIT_BOOTSTRAP};
    let boot = match Bootstrap::read_from_stdin() {
        Ok(boot) => boot,
        Err(e) => {
            eprintln!("hopline worker: cannot read the bootstrap from stdin: {e}");
            return EXIT_BOOTSTRAP;
        }
    };
    let app = match PipelineConfig::from_yaml(&boot.config_origin, &boot.config_text) {
        Ok(config) => config.app,
        Err(e) => {
            eprintln!("hopline worker: {e}");
            return EXIT_BOOTSTRAP;
        }
    };
    match app.as_str() {
        hopline_fundload::APP => run_worker(&hopline_fundload::registry(), boot),
        hopline_probe::APP => run_worker(&hopline_probe::registry(), boot),
        other => {
            eprintln!("hopline worker: unknown app `{other}`");
            EXIT_BOOTSTRAP
        }
    }
}

/// Builds a config's pipeline without running it; returns its node chain for display.
pub fn check(config: &PipelineConfig) -> Result<String, RunError> {
    match config.app.as_str() {
        hopline_fundload::APP => chain(&hopline_fundload::registry(), &LineEnds, config),
        hopline_probe::APP => chain(&hopline_probe::registry(), &LineEnds, config),
        hopline_observer::APP => {
            chain(&hopline_observer::registry(), &hopline_observer::ObserverEnds::default(), config)
        }
        _ => Err(unknown_app(config)),
    }
}

fn chain<M: Message>(registry: &Registry<M>, ends: &dyn Ends<M>, config: &PipelineConfig) -> Result<String, RunError> {
    let pipeline = hopline_runtime::run::build(registry, ends, config)?;
    let names: Vec<&str> = pipeline.stages.iter().map(|s| s.info.name.as_str()).collect();
    Ok(format!("source → {} → sink", names.join(" → ")))
}

/// Every app's node kinds, for `hopline nodes`.
pub fn describe_nodes() -> String {
    let mut out = String::new();
    describe(&mut out, &hopline_fundload::registry());
    describe(&mut out, &hopline_probe::registry());
    describe(&mut out, &hopline_observer::registry());
    out
}

fn describe<M: Message>(out: &mut String, registry: &Registry<M>) {
    let _ = writeln!(out, "app {}", registry.app());
    for kind in registry.kinds() {
        let _ = writeln!(out, "  {:<12} {}", kind.name, kind.summary);
        let _ = writeln!(out, "  {:<12} consumes {}; emits {}", "", kind.consumes.join(", "), kind.emits.join(", "));
        if !kind.requires.is_empty() {
            let _ = writeln!(out, "  {:<12} after {}", "", kind.requires.join(", "));
        }
    }
}
