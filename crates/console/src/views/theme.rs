//! Colours and emphasis. With `NO_COLOR` every colour is dropped but modifiers (bold,
//! reverse) and the text markers stay, so nothing depends on colour alone.
use ratatui::style::{Color, Modifier, Style};

use crate::model::{CheckStatus, ReleaseState};

/// The styles of one render, with or without colour.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    pub fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn header_bar(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    pub fn ok(&self) -> Style {
        self.fg(Color::Green)
    }

    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }

    pub fn bad(&self) -> Style {
        self.fg(Color::Red)
    }

    pub fn key(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn release_state(&self, s: ReleaseState) -> Style {
        match s {
            ReleaseState::Live => self.ok().add_modifier(Modifier::BOLD),
            ReleaseState::Approved => self.fg(Color::Blue),
            ReleaseState::Ready => self.fg(Color::Cyan),
            ReleaseState::Previewing | ReleaseState::Promoting => self.warn(),
            ReleaseState::Blocked | ReleaseState::Failed => self.bad(),
            ReleaseState::Superseded | ReleaseState::Abandoned => self.dim(),
            ReleaseState::RolledBack | ReleaseState::Reverted => self.fg(Color::Magenta),
        }
    }

    pub fn check(&self, s: CheckStatus) -> Style {
        match s {
            CheckStatus::Pass => self.ok(),
            CheckStatus::Warn => self.warn(),
            CheckStatus::Fail => self.bad(),
            CheckStatus::Skip => self.dim(),
        }
    }

    /// Colour of a schema-diff line by its sign.
    pub fn diff(&self, sign: char) -> Style {
        match sign {
            '+' => self.ok(),
            '-' => self.bad(),
            '~' => self.warn(),
            _ => Style::new(),
        }
    }
}
