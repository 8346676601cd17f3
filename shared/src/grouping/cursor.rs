//! A cursor over one line of rule text, shared by the two rule languages of grouping (stack-trace
//! rules and fingerprinting rules), which are parsed by hand: each is a line of a few tokens.

/// Characters of one rule line and the position reached.
pub(crate) struct Cursor {
    pub chars: Vec<char>,
    pub pos: usize,
}

impl Cursor {
    pub fn new(line: &str) -> Self {
        Self { chars: line.chars().collect(), pos: 0 }
    }

    pub fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Skips any whitespace.
    pub fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Skips spaces only (the fingerprinting grammar's `_`).
    pub fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
    }

    pub fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Whether the rest of the line starts with `s`.
    pub fn starts_with(&self, s: &str) -> bool {
        (self.pos..).zip(s.chars()).all(|(i, c)| self.chars.get(i) == Some(&c))
    }

    pub fn eat_str(&mut self, s: &str) -> bool {
        if self.starts_with(s) {
            self.pos += s.chars().count();
            true
        } else {
            false
        }
    }

    pub fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// The rest of the line (for error messages).
    pub fn rest(&self) -> String {
        self.chars[self.pos.min(self.chars.len())..].iter().collect()
    }

    /// `"…"` with backslash escapes (Sentry's `unescape_string`: `\n`, `\t`, `\r`, `\"`, `\\`, `\'`;
    /// any other escape kept as written), or `None` (cursor kept) if not at a quote.
    pub fn quoted(&mut self) -> Result<Option<String>, String> {
        if self.peek() != Some('"') {
            return Ok(None);
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string".into()),
                Some('"') => {
                    self.pos += 1;
                    return Ok(Some(out));
                }
                Some('\\') => {
                    self.pos += 1;
                    let Some(c) = self.peek() else {
                        return Err("unterminated quoted string".into());
                    };
                    self.pos += 1;
                    match c {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '"' | '\\' | '\'' => out.push(c),
                        other => {
                            out.push('\\');
                            out.push(other);
                        }
                    }
                }
                Some(c) => {
                    self.pos += 1;
                    out.push(c);
                }
            }
        }
    }
}
