//! Colours that stay readable on 256-colour terminals (indexed colours
//! only, no RGB), and a colourless mode for `NO_COLOR` in which values are
//! shown by modifiers and shading characters instead.

use ratatui::style::{Color, Modifier, Style};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

/// Dark to bright: black, blues, teal, greens, yellow, white (xterm-256).
const HEAT: [u8; 16] = [
    234, 17, 18, 19, 25, 31, 37, 43, 49, 84, 120, 156, 192, 228, 229, 231,
];
/// Unlikely (red) to likely (green).
const PROB: [u8; 7] = [196, 202, 208, 214, 220, 148, 40];
/// Shading from empty to full, for colourless heatmaps.
pub const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];

impl Theme {
    /// Colour unless `NO_COLOR` is set to anything non-empty.
    pub fn from_env() -> Self {
        Self {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    pub fn plain() -> Self {
        Self { color: false }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn border(&self, focused: bool) -> Style {
        match (self.color, focused) {
            (true, true) => Style::new().fg(Color::Indexed(75)),
            (true, false) => Style::new().fg(Color::Indexed(240)),
            (false, true) => Style::new().add_modifier(Modifier::BOLD),
            (false, false) => Style::new(),
        }
    }

    pub fn title(&self, focused: bool) -> Style {
        let s = Style::new().add_modifier(Modifier::BOLD);
        if self.color && focused {
            s.fg(Color::Indexed(75))
        } else {
            s
        }
    }

    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Indexed(244))
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    pub fn error(&self) -> Style {
        self.fg(Color::Indexed(196)).add_modifier(Modifier::BOLD)
    }

    pub fn warn(&self) -> Style {
        self.fg(Color::Indexed(214))
    }

    pub fn ok(&self) -> Style {
        self.fg(Color::Indexed(40))
    }

    pub fn accent(&self) -> Style {
        self.fg(Color::Indexed(75)).add_modifier(Modifier::BOLD)
    }

    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn status_bar(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Indexed(236)).fg(Color::Indexed(252))
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// A generated token by its probability (p in 0..=1). Without colour:
    /// unlikely tokens are underlined, very unlikely ones bold as well.
    pub fn prob(&self, p: f32) -> Style {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if self.color {
            let i = ((p * (PROB.len() as f32 - 0.01)) as usize).min(PROB.len() - 1);
            Style::new().fg(Color::Indexed(PROB[i]))
        } else if p < 0.1 {
            Style::new().add_modifier(Modifier::UNDERLINED | Modifier::BOLD)
        } else if p < 0.5 {
            Style::new().add_modifier(Modifier::UNDERLINED)
        } else {
            Style::new()
        }
    }

    /// A token by the entropy (nats) of the distribution it came from:
    /// 0 is certain, 4 or more very uncertain.
    pub fn entropy(&self, h: f32) -> Style {
        let certainty = if h.is_finite() {
            1.0 - (h / 4.0).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.prob(certainty)
    }

    /// A heatmap value in 0..=1.
    pub fn heat(&self, v: f32) -> Color {
        let v = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if self.color {
            Color::Indexed(HEAT[((v * (HEAT.len() as f32 - 0.01)) as usize).min(HEAT.len() - 1)])
        } else {
            Color::Reset
        }
    }

    pub fn shade(v: f32) -> char {
        let v = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if v <= 0.0 {
            return ' ';
        }
        SHADES[(1 + (v * (SHADES.len() as f32 - 1.01)) as usize).min(SHADES.len() - 1)]
    }
}
