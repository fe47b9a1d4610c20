//! The whole screen, from the app: lays the panes out ([`super::layout`]) and hands each
//! the state of its view and the [`Chrome`] they share.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::{Clear, Paragraph, Widget, Wrap};

use super::app::App;
use super::layout::{self, MIN_HEIGHT, MIN_WIDTH};
use super::panes::attention::Shown;
use super::panes::status::Facts;
use super::panes::{
    Chrome, attention, bias, compare, help, output, positions, probs, prompt, sessions, settings,
    status,
};
use super::state::Overlay;

/// What every pane shares, from the app.
pub fn chrome(app: &App) -> Chrome<'_> {
    Chrome {
        theme: &app.theme,
        keymap: &app.keymap,
        focus: app.focus,
        overlay: app.overlay,
        engine: &app.state,
        info: app.info.as_ref(),
        config: &app.config,
    }
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let a = layout::areas(&app.screen(), area);
    if a.too_small {
        let text = format!(
            "terminal too small: {MIN_WIDTH}x{MIN_HEIGHT} needed, this is {}x{}",
            area.width, area.height
        );
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    let c = chrome(app);
    let facts = Facts {
        model: &app.model_label,
        tokens: app.output.tokens.len(),
        tree: &app.tree,
        timings: &app.output.timings,
        checking_bias: app.bias.busy(),
    };
    status::render(&c, &facts, a.status, buf);
    status::render_message(&c, app.message.as_ref(), a.message, buf);
    let shown = Shown {
        view: &app.attn,
        output: &app.output,
        run: app.tree.shown,
    };
    if app.bias.is_open() {
        bias::render(&c, &app.bias, a.bias, buf);
    } else if app.compare_view {
        compare::render(&c, app.compare.as_ref(), app.attn.layer, a.compare, buf);
    } else if app.attention_view && app.positions.open {
        positions::render(&c, &app.positions, a.attention, buf);
    } else if app.attention_view {
        attention::render_full(&c, &shown, a.attention, buf);
    } else {
        let marks = app.tree.marks(app.output.prompt_len);
        output::render(&c, &app.output, &marks, a.output, buf);
        prompt::render(&c, &app.prompt, a.prompt, buf);
        probs::render(&c, &app.output, &app.probs, a.probs, buf);
        attention::render_small(&c, &shown, a.attention, buf);
    }
    if app.overlay != Overlay::None {
        Clear.render(a.popup, buf);
    }
    match app.overlay {
        Overlay::None => {}
        Overlay::Help => help::render(
            &app.theme,
            &app.keymap,
            &app.config_path,
            app.help_scroll,
            a.popup,
            buf,
        ),
        Overlay::Settings => settings::render(&c, &app.settings, &app.defaults, a.popup, buf),
        Overlay::Sessions => sessions::render(&c, &app.sessions, a.popup, buf),
    }
}
