#!/usr/bin/env python3
"""Turns a colour terminal capture (`tmux capture-pane -e -p`) into an SVG
picture, for the README. Understands the SGR codes ratatui emits through
crossterm on a 256-colour terminal; half blocks are drawn as two rectangles
so the heatmaps do not depend on the font.

    tmux capture-pane -e -p -t SESSION > screen.ansi
    python3 assets/ansi_to_svg.py screen.ansi > assets/screenshot.svg
"""
import html
import re
import sys

CW, CH, FONT = 8.4, 17, 14
BASE16 = ["#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5",
          "#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff"]
DEFAULT_FG, DEFAULT_BG = "#d0d0d0", "#1c1c1c"


def xterm(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    g = 8 + 10 * (n - 232)
    return "#%02x%02x%02x" % (g, g, g)


def parse(text):
    rows = []
    state = {"fg": None, "bg": None, "bold": False, "rev": False}
    for line in text.rstrip("\n").split("\n"):
        cells = []
        for tok in re.split(r"(\x1b\[[0-9;]*m)", line):
            if tok.startswith("\x1b["):
                codes = [int(c) if c else 0 for c in tok[2:-1].split(";")]
                i = 0
                while i < len(codes):
                    c = codes[i]
                    if c == 0:
                        state = {"fg": None, "bg": None, "bold": False, "rev": False}
                    elif c == 1:
                        state["bold"] = True
                    elif c == 22:
                        state["bold"] = False
                    elif c == 7:
                        state["rev"] = True
                    elif c == 27:
                        state["rev"] = False
                    elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                        state["fg" if c == 38 else "bg"] = xterm(codes[i + 2])
                        i += 2
                    elif c == 39:
                        state["fg"] = None
                    elif c == 49:
                        state["bg"] = None
                    elif 30 <= c <= 37:
                        state["fg"] = BASE16[c - 30]
                    elif 90 <= c <= 97:
                        state["fg"] = BASE16[c - 90 + 8]
                    elif 40 <= c <= 47:
                        state["bg"] = BASE16[c - 40]
                    elif 100 <= c <= 107:
                        state["bg"] = BASE16[c - 100 + 8]
                    i += 1
                continue
            for ch in tok:
                fg, bg = state["fg"] or DEFAULT_FG, state["bg"] or DEFAULT_BG
                if state["rev"]:
                    fg, bg = bg, fg
                cells.append((ch, fg, bg, state["bold"]))
        rows.append(cells)
    return rows


def svg(rows):
    width = max(len(r) for r in rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * CW:.0f}" height="{len(rows) * CH}" '
           f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}">',
           f'<rect width="100%" height="100%" fill="{DEFAULT_BG}"/>']
    for y, row in enumerate(rows):
        for x, (ch, fg, bg, bold) in enumerate(row):
            px, py = x * CW, y * CH
            if ch == "▀":
                out.append(f'<rect x="{px:.1f}" y="{py}" width="{CW + 0.3:.1f}" height="{CH / 2 + 0.3:.1f}" fill="{fg}"/>')
                out.append(f'<rect x="{px:.1f}" y="{py + CH / 2:.1f}" width="{CW + 0.3:.1f}" height="{CH / 2 + 0.3:.1f}" fill="{bg}"/>')
                continue
            if bg != DEFAULT_BG:
                out.append(f'<rect x="{px:.1f}" y="{py}" width="{CW + 0.3:.1f}" height="{CH + 0.3:.1f}" fill="{bg}"/>')
            if ch == "█":
                out.append(f'<rect x="{px:.1f}" y="{py}" width="{CW + 0.3:.1f}" height="{CH + 0.3:.1f}" fill="{fg}"/>')
            elif ch != " ":
                weight = ' font-weight="bold"' if bold else ""
                out.append(f'<text x="{px:.1f}" y="{py + CH * 0.78:.1f}" fill="{fg}"{weight}>{html.escape(ch)}</text>')
    out.append("</svg>")
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(svg(parse(f.read())))
