//! Screen geometry shared by the renderer and by `update` (for mouse clicks and page
//! sizes): where the header, tabs, body and footer are, which tab or row a column or line
//! hits, and which rows of a list are visible.
use ratatui::layout::Rect;

use crate::state::{DetailTab, Tab};

/// The four horizontal bands of the screen.
#[derive(Debug, Clone, Copy)]
pub struct Regions {
    pub header: Rect,
    pub tabs: Rect,
    pub body: Rect,
    pub footer: Rect,
}

/// Splits a `width`×`height` screen into bands.
pub fn regions(width: u16, height: u16) -> Regions {
    let row = |y: u16, h: u16| Rect::new(0, y.min(height), width, h.min(height.saturating_sub(y)));
    Regions {
        header: row(0, 1),
        tabs: row(1, 1),
        body: row(2, height.saturating_sub(3)),
        footer: row(height.saturating_sub(1), 1),
    }
}

/// A list's (or a detail's) scrolling rows: the body minus its title and heading lines.
pub fn rows_area(body: Rect) -> Rect {
    Rect::new(
        body.x,
        body.y + 2.min(body.height),
        body.width,
        body.height.saturating_sub(2),
    )
}

/// The first visible row so that `selected` is on screen, moving as little as possible.
pub fn offset_for(selected: usize, offset: usize, rows: usize) -> usize {
    let rows = rows.max(1);
    if selected < offset {
        selected
    } else if selected >= offset + rows {
        selected + 1 - rows
    } else {
        offset
    }
}

/// The label of a top-level tab as drawn.
pub fn tab_label(tab: Tab) -> String {
    format!(" {} {} ", tab.index() + 1, tab.title())
}

/// The tab drawn at column `col`.
pub fn tab_at(tabs: Rect, col: u16) -> Option<Tab> {
    let mut x = tabs.x;
    for tab in Tab::ALL {
        let w = tab_label(tab).chars().count() as u16;
        if col >= x && col < x + w {
            return Some(tab);
        }
        x += w;
    }
    None
}

/// The label of a detail sub-view as drawn in a body `width` wide: the full titles when
/// they all fit, else short ones (so every sub-view stays reachable by eye and click).
pub fn subtab_label(t: DetailTab, width: u16) -> String {
    let full: usize = (DetailTab::ALL.iter())
        .map(|t| t.title().chars().count() + 2)
        .sum();
    if full <= width as usize {
        return format!(" {} ", t.title());
    }
    let short = match t {
        DetailTab::Migrations => "SQL",
        DetailTab::Schema => "Diff",
        DetailTab::History => "Approvals",
        other => other.title(),
    };
    format!(" {short} ")
}

/// The line of the detail's sub-view bar.
pub fn subtabs_row(body: Rect) -> u16 {
    body.y + 1
}

/// The sub-view drawn at column `col` of the sub-view bar.
pub fn subtab_at(body: Rect, col: u16) -> Option<DetailTab> {
    let mut x = body.x;
    for t in DetailTab::ALL {
        let w = subtab_label(t, body.width).chars().count() as u16;
        if col >= x && col < x + w {
            return Some(t);
        }
        x += w;
    }
    None
}
