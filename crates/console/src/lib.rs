//! The operations console: a ratatui face over the same engine calls as the CLI.
//!
//! Shape (functional core, imperative shell): [`state::State`] is plain data;
//! [`update::update`] turns each [`action::Action`] into state changes plus engine
//! requests; [`worker::Worker`] owns the engine on its own thread and answers requests as
//! events; [`views::draw`] renders the state. This module is the shell: terminal setup and
//! restore (also on panic), the event loop, and nothing else. The console never prints to
//! the terminal it draws on; logs go to the file the CLI set up.
pub mod action;
pub mod alerts;
pub mod copy;
pub mod data;
pub mod dialog;
pub mod effects;
pub mod flows;
pub mod format;
pub mod keymap;
pub mod palette;
pub mod state;
pub mod tabs;
pub mod update;
pub mod views;
pub mod worker;

use std::io::Stdout;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, MouseButton, MouseEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

// The core's public API under the names the console's modules use: the engine (its calls
// and the read models it hands out, `engine::view`) and the model.
use d1ops_core::{engine, model};

use crate::action::Action;
use crate::effects::{Effect, Reply};
use crate::engine::{Engine, EngineOptions};
use crate::state::{Info, State};

pub use keymap::keymap_markdown;

/// Everything the loop reacts to.
enum LoopEvent {
    Input(Event),
    Reply(Reply),
}

/// Opens the workspace at `root` and runs the console until the operator quits.
pub fn run(root: PathBuf, opts: EngineOptions) -> anyhow::Result<()> {
    let engine = Engine::open(&root, opts)?;
    let info = Info {
        workspace: engine.ws.root.display().to_string(),
        root: engine.ws.root.display().to_string(),
        backend: engine.backend.kind().to_string(),
        account: engine.cloudflare_account(),
        actor: engine.actor.clone(),
        readonly: engine.readonly,
        allow_self_approval: engine.ws.config.policy.allow_self_approval,
    };
    if let Some(rec) = &engine.recovered {
        tracing::info!(?rec, "recovered an interrupted promotion on open");
    }
    let (tx, rx) = channel::<LoopEvent>();
    let reply_tx = tx.clone();
    let worker = worker::Worker::spawn(engine, move |r| {
        let _ = reply_tx.send(LoopEvent::Reply(r));
    })
    .context("could not start the engine worker thread")?;

    let mut terminal = setup_terminal().context("could not set up the terminal")?;
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx, stop.clone());
    let result = event_loop(&mut terminal, info, &worker, &rx);
    stop.store(true, Ordering::Relaxed);
    restore_terminal();
    let _ = input.join();
    // Quitting never waits for the engine: a read still running is interrupted and left
    // behind, and a write the operator chose to leave (the quit dialog) is finished by the
    // recovery the next command runs. The process exit ends the thread.
    engine::interrupt_reads();
    worker.detach();
    result
}

fn setup_terminal() -> std::io::Result<Terminal<CrosstermBackend<Stdout>>> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        hook(info);
    }));
    enable_raw_mode()?;
    let mut out = std::io::stdout();
    if let Err(e) = execute!(out, EnterAlternateScreen, EnableMouseCapture) {
        restore_terminal();
        return Err(e);
    }
    Terminal::new(CrosstermBackend::new(out))
}

/// Leaves raw mode and the alternate screen; safe to call more than once.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Reads terminal input on its own thread so the loop can wait on one channel.
fn spawn_input(tx: Sender<LoopEvent>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.send(LoopEvent::Input(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading terminal input failed");
                        return;
                    }
                },
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "polling terminal input failed");
                    return;
                }
            }
        }
    })
}

/// Turns a terminal event into an action, if it means one here.
pub fn translate(state: &State, ev: &Event) -> Option<Action> {
    match ev {
        Event::Key(k) => keymap::resolve(state, k),
        Event::Resize(w, h) => Some(Action::Resize(*w, *h)),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollUp => Some(Action::WheelUp),
            MouseEventKind::ScrollDown => Some(Action::WheelDown),
            MouseEventKind::Down(MouseButton::Left) => Some(Action::Click {
                col: m.column,
                row: m.row,
            }),
            _ => None,
        },
        _ => None,
    }
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    info: Info,
    worker: &worker::Worker,
    rx: &Receiver<LoopEvent>,
) -> anyhow::Result<()> {
    let size = terminal.size()?;
    let mut state = State::new(info, chrono::Utc::now(), size.width, size.height);
    state.color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let tick = Duration::from_millis(100);
    let mut last_tick = Instant::now();
    let mut effects = update::update(&mut state, Action::Tick(chrono::Utc::now()));
    // Benchmarks measure cold start: quit right after the first frame that shows engine data.
    let exit_after_data = std::env::var_os("D1OPS_CONSOLE_EXIT_AFTER_FIRST_DATA").is_some();
    let mut got_data = false;
    loop {
        for effect in effects.drain(..) {
            match effect {
                Effect::Engine(req) => {
                    if !worker.send(req) {
                        anyhow::bail!(
                            "the engine worker stopped unexpectedly; see the log under .d1ops/"
                        );
                    }
                }
                Effect::Cancel => {
                    let n = engine::interrupt_reads();
                    tracing::info!(reads = n, "cancelled reads interrupted");
                }
                Effect::Copy(text) => {
                    use std::io::Write;
                    let mut out = std::io::stdout();
                    let _ = out.write_all(copy::osc52(&text).as_bytes());
                    let _ = out.flush();
                }
            }
        }
        if state.quit {
            return Ok(());
        }
        if state.dirty {
            let started = Instant::now();
            terminal.draw(|f| views::draw(f, &state))?;
            state.dirty = false;
            let ms = started.elapsed().as_millis();
            if ms > 30 {
                tracing::warn!(ms, "slow frame");
            }
            if exit_after_data && got_data {
                return Ok(());
            }
        }
        let wait = tick.saturating_sub(last_tick.elapsed());
        let action = match rx.recv_timeout(wait) {
            Ok(LoopEvent::Input(ev)) => translate(&state, &ev),
            Ok(LoopEvent::Reply(r)) => {
                got_data = true;
                Some(Action::Reply(r))
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the console's event channel closed")
            }
        };
        let started = Instant::now();
        if let Some(action) = action {
            effects.extend(update::update(&mut state, action));
        }
        if last_tick.elapsed() >= tick {
            last_tick = Instant::now();
            effects.extend(update::update(&mut state, Action::Tick(chrono::Utc::now())));
        }
        let ms = started.elapsed().as_millis();
        if ms > 20 {
            tracing::warn!(ms, "slow update turn");
        }
    }
}
