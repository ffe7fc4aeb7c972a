//! An optional extractor behind the rules: an OpenAI-compatible chat-completions endpoint
//! (URL, model and key from the configuration; off by default) asked for the same JSON.
//!
//! The model is given the chunk's pages and the rules' own reading of them as a draft, each
//! value's source written as `page` and `quote` (the exact text it was read from), and is asked
//! to return the draft corrected and completed in the same shape. Every value it returns is
//! grounded again: its quote is looked up in that page's text to make its span; a value whose
//! quote is not on its page keeps no source and half its confidence. A backend that fails or
//! answers with something else leaves the rules' reading in place, with a warning: nothing
//! depends on it.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::document::Document;

/// Longest one request may take.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Most bytes read of an answer.
const ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// Where and how to ask.
#[derive(Debug, Clone)]
pub(crate) struct ChatBackend {
    /// The chat-completions endpoint (`.../v1/chat/completions`).
    url: String,
    model: String,
    key: Option<String>,
    client: reqwest::Client,
}

impl ChatBackend {
    /// A backend at `url` (the full chat-completions URL) with `model`, sending `key` as a
    /// bearer token when given.
    pub(crate) fn new(url: String, model: String, key: Option<String>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ChatBackend {
            url,
            model,
            key,
            client,
        })
    }

    /// The model's reading of pages `pages` for `profile`, starting from the rules' `draft`.
    pub(crate) async fn extract(
        &self,
        profile: &str,
        document: &Document,
        pages: std::ops::Range<usize>,
        draft: &Value,
    ) -> Result<Value, String> {
        let mut text = String::new();
        for page in document.pages.get(pages).unwrap_or_default() {
            text.push_str(&format!("=== page {} ===\n{}\n", page.page, page.text));
        }
        let instructions = format!(
            "You extract the `{profile}` profile from documents (French or English). Answer \
             with one JSON object and nothing else, in exactly the shape of the draft below. \
             Every value is an object {{\"value\", \"confidence\" (0 to 1), \"page\", \"quote\"}} \
             where quote is the exact text of that page the value was read from. Dates are \
             YYYY-MM-DD, times HH:MM, amounts numbers. Correct the draft and add what it missed; \
             leave out what the pages do not say.\n\nDraft:\n{}",
            to_quotes(draft, document)
        );
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "response_format": { "type": "json_object" },
            "messages": [
                { "role": "system", "content": instructions },
                { "role": "user", "content": text },
            ],
        });
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the extraction backend answered {status}"));
        }
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if bytes.len() > ANSWER_LIMIT {
            return Err("the extraction backend's answer is too large".to_owned());
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the extraction backend's answer is not JSON: {e}"))?;
        let content = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or("the extraction backend's answer has no message content")?;
        let content = content
            .trim()
            .trim_start_matches("```json")
            .trim_start_matches("```")
            .trim_end_matches("```");
        let reading: Value = serde_json::from_str(content)
            .map_err(|e| format!("the extraction backend did not answer JSON: {e}"))?;
        if !reading.is_object() && !reading.is_array() {
            return Err("the extraction backend did not answer a JSON object".to_owned());
        }
        Ok(grounded(reading, document))
    }
}

/// True for a value as the profiles write it: `{value, confidence, source}`.
fn is_found(map: &Map<String, Value>) -> bool {
    map.contains_key("value") && map.contains_key("source")
}

/// `draft` with each value's source written as its page and the text it spans.
fn to_quotes(draft: &Value, document: &Document) -> Value {
    match draft {
        Value::Object(map) if is_found(map) => {
            let mut out = map.clone();
            let source = out.remove("source").unwrap_or(Value::Null);
            let page = source["page"].as_u64();
            let quote = page
                .and_then(|n| document.pages.iter().find(|p| u64::from(p.page) == n))
                .map(|p| {
                    let start = source["start"].as_u64().unwrap_or(0) as usize;
                    let end = source["end"].as_u64().unwrap_or(0) as usize;
                    p.text
                        .chars()
                        .skip(start)
                        .take(end.saturating_sub(start))
                        .collect::<String>()
                });
            out.insert("page".into(), json!(page));
            out.insert("quote".into(), json!(quote));
            Value::Object(out)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_quotes(v, document)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| to_quotes(v, document)).collect()),
        other => other.clone(),
    }
}

/// `reading` with each `{value, page, quote}` given its `source` span again, found on its page.
fn grounded(reading: Value, document: &Document) -> Value {
    match reading {
        Value::Object(mut map) if map.contains_key("value") && map.contains_key("quote") => {
            let quote = map.remove("quote").unwrap_or(Value::Null);
            let page = map.remove("page").and_then(|p| p.as_u64());
            let span = page
                .and_then(|n| document.pages.iter().find(|p| u64::from(p.page) == n))
                .zip(quote.as_str())
                .and_then(|(page, quote)| {
                    let quote = quote.trim();
                    (!quote.is_empty())
                        .then(|| {
                            page.text
                                .find(quote)
                                .map(|at| page.span(at, at + quote.len()))
                        })
                        .flatten()
                });
            let confidence = map
                .get("confidence")
                .and_then(Value::as_f64)
                .unwrap_or(0.5)
                .clamp(0.0, 1.0);
            match span {
                Some(source) => {
                    map.insert("source".into(), json!(source));
                    map.insert("confidence".into(), json!(confidence));
                }
                None => {
                    map.insert("source".into(), Value::Null);
                    map.insert("confidence".into(), json!(confidence / 2.0));
                }
            }
            Value::Object(map)
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, grounded(v, document)))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| grounded(v, document)).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::document::{Page, PageSource};
    use super::*;

    fn document() -> Document {
        Document {
            pages: vec![Page::new(
                1,
                "Marché n° 2025-014. Date limite : 15 mars 2025".into(),
                PageSource::Text,
            )],
            format: "text".into(),
            warnings: Vec::new(),
            derived: Default::default(),
        }
    }

    #[test]
    fn quotes_go_out_and_come_back_as_the_same_spans() {
        let document = document();
        let page = &document.pages[0];
        let at = page.text.find("2025-014").unwrap_or_default();
        let draft = json!({
            "reference": { "value": "2025-014", "confidence": 0.9, "source": page.span(at, at + 8) },
            "lots": [],
        });
        let quoted = to_quotes(&draft, &document);
        assert_eq!(quoted["reference"]["quote"], "2025-014");
        assert_eq!(quoted["reference"]["page"], 1);
        assert!(quoted["reference"].get("source").is_none());
        assert_eq!(grounded(quoted, &document), draft);
    }

    #[test]
    fn a_quote_not_on_its_page_keeps_no_source_and_half_its_confidence() {
        let reading = json!({ "buyer": { "value": "Ville", "confidence": 0.8, "page": 1, "quote": "Ville de Lyon" } });
        let grounded = grounded(reading, &document());
        assert_eq!(grounded["buyer"]["source"], Value::Null);
        assert_eq!(grounded["buyer"]["confidence"], 0.4);
    }
}
