//! Server-sent events, as OpenAI-compatible servers stream them: `data:`
//! lines, a blank line after each event, `:` comments (keep-alive pings),
//! and `data: [DONE]` at the end.

use std::io::BufRead;

#[derive(Clone, Debug, PartialEq)]
pub enum SseItem {
    /// One event's data (its `data:` lines joined by newlines).
    Data(String),
    /// `data: [DONE]`: the server is finished.
    Done,
}

pub struct SseReader<R> {
    reader: R,
    line: Vec<u8>,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            line: Vec::new(),
        }
    }

    /// The next event, or `None` where the stream ends (with or without
    /// `[DONE]`: the caller tells the two apart).
    pub fn next_item(&mut self) -> std::io::Result<Option<SseItem>> {
        let mut data: Option<String> = None;
        loop {
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line)?;
            if n == 0 {
                // A last event without its blank line still counts, unless
                // its line was cut (no newline): then it is half an event.
                return Ok(data.map(item));
            }
            let complete = self.line.ends_with(b"\n");
            let text = String::from_utf8_lossy(&self.line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                if let Some(d) = data.take() {
                    return Ok(Some(item(d)));
                }
                continue;
            }
            if !complete {
                return Ok(data.map(item));
            }
            if text.starts_with(':') {
                continue;
            }
            let (field, value) = match text.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (text, ""),
            };
            if field == "data" {
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                }
            }
            // `event:`, `id:` and `retry:` carry nothing these servers use.
        }
    }
}

fn item(data: String) -> SseItem {
    if data.trim() == "[DONE]" {
        SseItem::Done
    } else {
        SseItem::Data(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(stream: &str) -> Vec<SseItem> {
        let mut r = SseReader::new(stream.as_bytes());
        std::iter::from_fn(|| r.next_item().unwrap()).collect()
    }

    #[test]
    fn events_pings_and_done() {
        let s =
            ": ping\r\n\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata: b\ndata: c\n\ndata: [DONE]\n\n";
        assert_eq!(
            items(s),
            vec![
                SseItem::Data("{\"a\":1}".into()),
                SseItem::Data("b\nc".into()),
                SseItem::Done
            ]
        );
    }

    #[test]
    fn a_cut_line_is_not_an_event() {
        assert_eq!(
            items("data: {\"a\":1}\n\ndata: {\"b\""),
            vec![SseItem::Data("{\"a\":1}".into())]
        );
        // A whole last line without the blank line after it still counts.
        assert_eq!(items("data: [DONE]\n"), vec![SseItem::Done]);
    }
}
