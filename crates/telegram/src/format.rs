//! Replies as Telegram shows them: Markdown to Telegram HTML ([`markdown_to_html`]) and the
//! split into messages ([`chunk_markdown`]).
//!
//! Telegram's HTML knows `b`, `i`, `s`, `code`, `pre`, `a`; everything else is text, with
//! `&`, `<` and `>` escaped. A chunk is measured in UTF-16 code units, as Telegram counts its
//! 4096 limit; the HTML of a chunk shows no more characters than its Markdown has.

/// Telegram's limit on one message's text.
pub const TELEGRAM_TEXT_LIMIT: usize = 4096;

/// `text` with `&`, `<` and `>` escaped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn escape_attr(text: &str) -> String {
    escape_html(text).replace('"', "&quot;")
}

/// The length Telegram counts: UTF-16 code units.
pub fn telegram_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Whether `line` opens or closes a code fence; its language when it opens one.
fn fence(line: &str) -> Option<&str> {
    let t = line.trim_start();
    t.strip_prefix("```").map(|rest| rest.trim())
}

/// Markdown (as models write it) to Telegram HTML: `**bold**`, `__bold__`, `*italic*`,
/// `_italic_`, `~~strike~~`, `` `code` ``, fenced code blocks (with their language),
/// `[text](url)` links, `#` headings (bold). Anything else is escaped text.
pub fn markdown_to_html(md: &str) -> String {
    let mut out = String::with_capacity(md.len() + 16);
    let mut lines = md.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if let Some(lang) = fence(line) {
            let mut code = String::new();
            for inner in lines.by_ref() {
                if fence(inner).is_some_and(str::is_empty) {
                    break;
                }
                code.push_str(inner);
            }
            let code = code.strip_suffix('\n').unwrap_or(&code);
            let lang: String = lang
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '#'))
                .collect();
            if lang.is_empty() {
                out.push_str("<pre><code>");
            } else {
                out.push_str(&format!("<pre><code class=\"language-{lang}\">"));
            }
            out.push_str(&escape_html(code));
            out.push_str("</code></pre>");
            if lines.peek().is_some() {
                out.push('\n');
            }
            continue;
        }
        let (body, newline) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let trimmed = body.trim_start();
        let hashes = trimmed.bytes().take_while(|b| *b == b'#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
            out.push_str("<b>");
            out.push_str(&inline(trimmed[hashes..].trim()));
            out.push_str("</b>");
        } else {
            out.push_str(&inline(body));
        }
        out.push_str(newline);
    }
    out
}

/// Finds `marker` in `s` from `from`, the closing delimiter of an inline span.
fn find_close(s: &str, from: usize, marker: &str) -> Option<usize> {
    s.get(from..)?.find(marker).map(|i| from + i)
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

/// Inline Markdown of one line to HTML.
fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let prev = s[..i].chars().next_back();
        // `code`
        if rest.starts_with('`') {
            let ticks = rest.bytes().take_while(|b| *b == b'`').count();
            let marker = &rest[..ticks];
            if let Some(end) = find_close(s, i + ticks, marker)
                && end > i + ticks
            {
                out.push_str("<code>");
                out.push_str(&escape_html(&s[i + ticks..end]));
                out.push_str("</code>");
                i = end + ticks;
                continue;
            }
        }
        // **bold**, __bold__, ~~strike~~
        let mut matched = false;
        for (marker, tag) in [("**", "b"), ("__", "b"), ("~~", "s")] {
            if rest.starts_with(marker)
                && !rest[2..].starts_with(char::is_whitespace)
                && (marker != "__" || !is_word(prev))
                && let Some(end) = find_close(s, i + 2, marker)
                && end > i + 2
                && !s[..end].ends_with(char::is_whitespace)
            {
                out.push_str(&format!("<{tag}>{}</{tag}>", inline(&s[i + 2..end])));
                i = end + 2;
                matched = true;
                break;
            }
        }
        if matched {
            continue;
        }
        // *italic*, _italic_ (not inside a word: snake_case stays as it is)
        for marker in ["*", "_"] {
            if rest.starts_with(marker)
                && !rest[1..].starts_with(char::is_whitespace)
                && !rest[1..].starts_with(marker)
                && (marker == "*" || !is_word(prev))
                && let Some(end) = find_close(s, i + 1, marker)
                && end > i + 1
                && !s[..end].ends_with(char::is_whitespace)
                && (marker == "*" || !is_word(s[end + 1..].chars().next()))
            {
                out.push_str(&format!("<i>{}</i>", inline(&s[i + 1..end])));
                i = end + 1;
                matched = true;
                break;
            }
        }
        if matched {
            continue;
        }
        // [text](url)
        if rest.starts_with('[')
            && let Some(close) = find_close(s, i + 1, "](")
            && let Some(end) = find_close(s, close + 2, ")")
        {
            let text = &s[i + 1..close];
            let url = s[close + 2..end].trim();
            let lower = url.to_ascii_lowercase();
            let safe = ["http://", "https://", "tg://", "mailto:"]
                .iter()
                .any(|p| lower.starts_with(p));
            if safe && !url.contains(char::is_whitespace) && !text.is_empty() {
                out.push_str(&format!(
                    "<a href=\"{}\">{}</a>",
                    escape_attr(url),
                    inline(text)
                ));
                i = end + 1;
                continue;
            }
        }
        let c = rest.chars().next().expect("not at the end");
        out.push_str(&escape_html(c.encode_utf8(&mut [0; 4])));
        i += c.len_utf8();
    }
    out
}

/// The byte offset of the longest prefix of `s` at most `limit` UTF-16 units long.
fn prefix_within(s: &str, limit: usize) -> usize {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > limit {
            return i;
        }
    }
    s.len()
}

/// Splits `text` into chunks of at most `limit` UTF-16 units (Telegram's count), preferring
/// paragraph breaks, then line breaks, then spaces; a code fence is never split unless it is
/// longer than a chunk by itself (then each part is closed and reopened with its fence).
/// Apart from that case, the chunks concatenated are `text` exactly.
pub fn chunk_markdown(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.clamp(16, TELEGRAM_TEXT_LIMIT);
    let mut chunks = Vec::new();
    let mut rest: String = text.to_owned();
    while telegram_len(&rest) > limit {
        let window = prefix_within(&rest, limit);
        // Candidate cuts (byte offsets where the next chunk starts), outside fences.
        let mut paragraph = None;
        let mut line = None;
        let mut space = None;
        let mut in_fence = false;
        let mut fence_open_at = None;
        let mut fence_lang = String::new();
        let mut pos = 0;
        for l in rest[..window].split_inclusive('\n') {
            let start = pos;
            pos += l.len();
            if start > 0 && !in_fence {
                line = Some(start);
                if rest[..start].ends_with("\n\n") {
                    paragraph = Some(start);
                }
            }
            if let Some(lang) = fence(l) {
                if in_fence {
                    in_fence = false;
                } else {
                    in_fence = true;
                    fence_open_at = Some(start);
                    fence_lang = lang.to_owned();
                }
                continue;
            }
            if !in_fence {
                for (j, c) in l.char_indices() {
                    if c == ' ' && start + j + 1 < window {
                        space = Some(start + j + 1);
                    }
                }
            }
        }
        if pos == window && !in_fence && window > 0 && rest[..window].ends_with('\n') {
            line = Some(window);
            if rest[..window].ends_with("\n\n") {
                paragraph = Some(window);
            }
        }
        // A paragraph break in the last part of the window beats a later line break.
        let cut = paragraph
            .filter(|p| *p * 3 >= window)
            .or(line.filter(|l| *l * 3 >= window))
            .or(paragraph)
            .or(line)
            .or(space)
            .filter(|c| *c > 0);
        match cut {
            Some(cut) => {
                chunks.push(rest[..cut].to_owned());
                rest = rest[cut..].to_owned();
            }
            None if fence_open_at == Some(0) && in_fence => {
                // A fence longer than a chunk: close it here, reopen it in the next chunk.
                let close = "\n```\n";
                let room = prefix_within(&rest, limit.saturating_sub(close.len()));
                let cut = rest[..room]
                    .rfind('\n')
                    .filter(|n| *n > rest.find('\n').unwrap_or(0))
                    .map(|n| n + 1)
                    .unwrap_or(room);
                let mut head = rest[..cut].to_owned();
                if !head.ends_with('\n') {
                    head.push('\n');
                }
                head.push_str("```\n");
                chunks.push(head);
                rest = format!("```{fence_lang}\n{}", &rest[cut..]);
            }
            None => {
                // No break at all (one long word): cut at the limit.
                let cut = window.max(rest.chars().next().map_or(1, char::len_utf8));
                chunks.push(rest[..cut].to_owned());
                rest = rest[cut..].to_owned();
            }
        }
    }
    if !rest.is_empty() || chunks.is_empty() {
        chunks.push(rest);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_telegram_html() {
        assert_eq!(
            markdown_to_html(
                "**bold** and *it* and _it2_ and `a<b>` & [link](https://x.org/?a=1&b=\"2\")"
            ),
            "<b>bold</b> and <i>it</i> and <i>it2</i> and <code>a&lt;b&gt;</code> &amp; <a href=\"https://x.org/?a=1&amp;b=&quot;2&quot;\">link</a>"
        );
        assert_eq!(
            markdown_to_html("# Title\nsnake_case_name 2*3*4 ~~old~~ __b__"),
            "<b>Title</b>\nsnake_case_name 2<i>3</i>4 <s>old</s> <b>b</b>"
        );
        assert_eq!(
            markdown_to_html("run:\n```sh\nuname -s && echo <x>\n```\ndone"),
            "run:\n<pre><code class=\"language-sh\">uname -s &amp;&amp; echo &lt;x&gt;</code></pre>\ndone"
        );
        assert_eq!(
            markdown_to_html("[x](javascript:alert(1))"),
            "[x](javascript:alert(1))"
        );
        assert_eq!(markdown_to_html("a * b * c"), "a * b * c");
        assert_eq!(
            markdown_to_html("unclosed **bold and `tick"),
            "unclosed **bold and `tick"
        );
        assert_eq!(
            markdown_to_html("```\nopen fence <"),
            "<pre><code>open fence &lt;</code></pre>"
        );
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(chunk_markdown("hi", 4000), vec!["hi"]);
        assert_eq!(chunk_markdown("", 4000), vec![""]);
    }

    #[test]
    fn chunks_prefer_paragraphs_and_keep_fences_whole() {
        let para = |n: usize, c: char| c.to_string().repeat(n);
        let fence = format!("```rust\n{}\n```\n", "let x = 1;\n".repeat(30));
        let text = format!(
            "{}\n\n{}\n\n{fence}{}\nend",
            para(60, 'a'),
            para(50, 'b'),
            para(40, 'c')
        );
        let chunks = chunk_markdown(&text, 400);
        assert_eq!(chunks.concat(), text);
        for c in &chunks {
            assert!(telegram_len(c) <= 400, "{}", telegram_len(c));
            assert_eq!(c.matches("```").count() % 2, 0, "a fence split: {c:?}");
        }
        assert!(chunks[0].ends_with("\n\n"), "{chunks:?}");
    }

    #[test]
    fn a_fence_longer_than_a_chunk_is_closed_and_reopened() {
        let text = format!("```py\n{}```\n", "print('x')\n".repeat(100));
        let chunks = chunk_markdown(&text, 300);
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(telegram_len(c) <= 300);
            assert!(c.starts_with("```py\n"), "{c:?}");
            assert_eq!(c.matches("```").count(), 2, "{c:?}");
        }
    }

    #[test]
    fn long_words_and_utf16() {
        let text = "😀".repeat(3000);
        let chunks = chunk_markdown(&text, 4000);
        assert_eq!(chunks.concat(), text);
        assert!(chunks.iter().all(|c| telegram_len(c) <= 4000));
        assert_eq!(chunks.len(), 2);
    }
}
