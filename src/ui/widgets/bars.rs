//! Horizontal bars in eighths of a cell (no colour needed to read them).

const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];

/// A bar `frac` (0..=1) of `width` cells, padded with spaces to `width`.
pub fn bar(frac: f32, width: usize) -> String {
    let frac = if frac.is_finite() {
        frac.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (frac * width as f32 * 8.0).round() as usize;
    let mut s = String::with_capacity(width * 3);
    let full = eighths / 8;
    for _ in 0..full.min(width) {
        s.push('█');
    }
    let rem = eighths % 8;
    if full < width && rem > 0 {
        s.push(EIGHTHS[rem - 1]);
    }
    let used = s.chars().count();
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    s
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_fill_in_eighths_and_keep_their_width() {
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.0, 3), "   ");
        assert_eq!(bar(0.5, 3), "█▌ ");
        assert_eq!(bar(f32::NAN, 2), "  ");
        assert_eq!(bar(7.0, 2), "██");
        assert_eq!(bar(0.3, 0), "");
    }
}
