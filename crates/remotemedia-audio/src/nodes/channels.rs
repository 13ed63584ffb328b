//! `AudioChannels`: changes the channel count by a fixed rule or an explicit matrix.

use std::sync::Arc;

use remotemedia_core::registry::ParamIssue;
use remotemedia_core::{AudioBuffer, Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::shared::Format;
use crate::input;

/// Params of `AudioChannels`: exactly one of `channels` and `matrix`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelsParams {
    /// Output channels, 1 to 8. Fewer than the input: output channel `o` is the average
    /// of the input channels `i` with `i mod channels == o` (to mono: the average of
    /// all). More than the input: output channel `o` repeats input channel
    /// `o mod input channels` (mono is duplicated to every channel). Not with `matrix`.
    #[schemars(range(min = 1, max = 8))]
    pub channels: Option<u16>,
    /// A mixing matrix instead of `channels`: one row per output channel (1 to 8 rows),
    /// one column per input channel, each output sample the sum of the input samples
    /// times the row's weights. Every row must have the same length, which must equal
    /// the input's channel count.
    pub matrix: Option<Vec<Vec<f64>>>,
}

/// Downmixes, upmixes or remixes channels; `pts_us` is kept.
#[derive(Debug)]
pub struct AudioChannels {
    /// Output channels.
    out_channels: u16,
    /// The matrix given, or `None` to build the rule's matrix at the first item.
    given: Option<Vec<Vec<f64>>>,
    /// The matrix in use, `[out][in]`, once the input format is known.
    matrix: Vec<Vec<f32>>,
    format: Format,
}

/// The rule's matrix from `m` input to `n` output channels (see [`ChannelsParams`]).
fn rule_matrix(m: u16, n: u16) -> Vec<Vec<f32>> {
    let (m, n) = (usize::from(m), usize::from(n));
    (0..n)
        .map(|o| {
            let mut row = vec![0.0f32; m];
            if n >= m {
                row[o % m] = 1.0;
            } else {
                let group: Vec<usize> = (0..m).filter(|i| i % n == o).collect();
                for &i in &group {
                    row[i] = 1.0 / group.len() as f32;
                }
            }
            row
        })
        .collect()
}

impl Node for AudioChannels {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = input::audio(&item)?;
        let (_, ch, _) = self.format.check(buf)?;
        // Set up at the first item (again after a failed set-up: the matrix stays empty).
        if self.matrix.is_empty() {
            self.matrix = match &self.given {
                Some(given) => {
                    if given[0].len() != usize::from(ch) {
                        return Err(NodeError::invalid_input(format!(
                            "`matrix` has {} column{} but the audio has {ch} channel{}: \
                             give one column per input channel",
                            given[0].len(),
                            if given[0].len() == 1 { "" } else { "s" },
                            if ch == 1 { "" } else { "s" }
                        )));
                    }
                    given
                        .iter()
                        .map(|r| r.iter().map(|&w| w as f32).collect())
                        .collect()
                }
                None => rule_matrix(ch, self.out_channels),
            };
        }
        if ch == self.out_channels && self.given.is_none() {
            out.push(item);
            return Ok(());
        }
        let ch = usize::from(ch);
        // The common rules get loops of their own; the samples are written straight into
        // the buffer the output keeps (no intermediate vector).
        let samples: Arc<[f32]> = match (ch, self.matrix.len(), self.given.is_some()) {
            (2, 1, false) => buf
                .samples
                .chunks_exact(2)
                .map(|f| (f[0] + f[1]) * 0.5)
                .collect(),
            (1, n, false) => buf
                .samples
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, n))
                .collect(),
            _ => buf
                .samples
                .chunks_exact(ch)
                .flat_map(|frame| {
                    self.matrix
                        .iter()
                        .map(move |row| row.iter().zip(frame).map(|(w, s)| w * s).sum::<f32>())
                })
                .collect(),
        };
        out.push(Data::from(
            AudioBuffer::new(samples, buf.sample_rate, self.out_channels).with_pts(buf.pts_us),
        ));
        Ok(())
    }
}

impl NodeType for AudioChannels {
    const NAME: &'static str = "AudioChannels";
    const DESCRIPTION: &'static str =
        "Changes the channel count: downmix by averaging, upmix by duplication, or an explicit \
         mixing `matrix`.";
    const INPUT: &'static str = "audio (with `matrix`: as many channels as it has columns)";
    const OUTPUT: &'static str =
        "the audio with `channels` (or the matrix's rows) channels, same `pts_us`";
    type Params = ChannelsParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        let mut issues = Vec::new();
        match (written.get("channels"), written.get("matrix")) {
            (Some(_), Some(_)) => issues.push(ParamIssue::new(
                "",
                "give either `channels` or `matrix`, not both",
            )),
            (None, None) => issues.push(ParamIssue::new("", "give `channels` or `matrix`")),
            _ => {}
        }
        if let Some(Value::Array(rows)) = written.get("matrix") {
            if rows.is_empty() || rows.len() > 8 {
                issues.push(ParamIssue::new(
                    "matrix",
                    format!(
                        "`matrix` must have 1 to 8 rows (one per output channel), found {}",
                        rows.len()
                    ),
                ));
            }
            let first = rows.first().and_then(Value::as_array).map(Vec::len);
            if first == Some(0) {
                issues.push(ParamIssue::new("matrix", "`matrix` rows must not be empty"));
            }
            for (k, row) in rows.iter().enumerate() {
                if let (Some(r), Some(n)) = (row.as_array(), first) {
                    if r.len() != n {
                        issues.push(ParamIssue::new(
                            format!("matrix.{k}"),
                            format!(
                                "every row of `matrix` must have the same length: row 0 has {n}, row {k} has {}",
                                r.len()
                            ),
                        ));
                    }
                }
            }
        }
        issues
    }

    fn from_params(p: &ChannelsParams) -> Result<Self, NodeError> {
        let out_channels = match (&p.matrix, p.channels) {
            (Some(m), _) => m.len() as u16,
            (None, Some(c)) => c,
            (None, None) => {
                return Err(NodeError::invalid_input("give `channels` or `matrix`"));
            }
        };
        Ok(AudioChannels {
            out_channels,
            given: p.matrix.clone(),
            matrix: Vec::new(),
            format: Format::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::testing::*;
    use super::*;
    use serde_json::json;

    fn mix(
        params: serde_json::Value,
        samples: &[f32],
        channels: u16,
    ) -> (Vec<f32>, Vec<(i64, usize)>) {
        let mut n = node::<AudioChannels>(params);
        joined(&run(&mut n, chunks(samples, 1000, channels, &[1, 2], 0)))
    }

    #[test]
    fn rules_average_down_and_duplicate_up() {
        let (s, spans) = mix(json!({"channels": 1}), &[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], 2);
        assert_eq!(s, [0.5, 0.5, 0.0]);
        assert_eq!(spans, [(0, 1), (1000, 2)]);
        assert_eq!(
            mix(json!({"channels": 3}), &[0.25, -1.0], 1).0,
            [0.25, 0.25, 0.25, -1.0, -1.0, -1.0]
        );
        // 4 → 2: (0 + 2) / 2 and (1 + 3) / 2; 2 → 3: 0 1 0.
        assert_eq!(
            mix(json!({"channels": 2}), &[1.0, 2.0, 3.0, 4.0], 4).0,
            [2.0, 3.0]
        );
        assert_eq!(
            mix(json!({"channels": 3}), &[1.0, 2.0], 2).0,
            [1.0, 2.0, 1.0]
        );
        assert_eq!(mix(json!({"channels": 2}), &[1.0, 2.0], 2).0, [1.0, 2.0]);
    }

    #[test]
    fn a_matrix_mixes_and_is_checked() {
        let (s, _) = mix(
            json!({"matrix": [[0.5, 0.5], [1.0, -1.0], [0, 2]]}),
            &[1.0, 3.0],
            2,
        );
        assert_eq!(s, [2.0, -2.0, 6.0]);
        let mut n = node::<AudioChannels>(json!({"matrix": [[1, 0, 0]]}));
        let e = n
            .process(
                chunks(&[0.0, 0.0], 1000, 2, &[1], 0).remove(0),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(
            e.message,
            "`matrix` has 3 columns but the audio has 2 channels: give one column per input channel"
        );
        let e = n
            .process(
                chunks(&[0.0, 0.0], 1000, 2, &[1], 0).remove(0),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(
            e.message.starts_with("`matrix` has 3 columns"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_params_are_load_time_errors() {
        assert_eq!(
            problems::<AudioChannels>(json!({})),
            [": give `channels` or `matrix`"]
        );
        assert_eq!(
            problems::<AudioChannels>(json!({"channels": 2, "matrix": [[1]]})),
            [": give either `channels` or `matrix`, not both"]
        );
        assert_eq!(
            problems::<AudioChannels>(json!({"channels": 9})),
            ["channels: `channels` must be between 1 and 8, found 9"]
        );
        assert_eq!(
            problems::<AudioChannels>(json!({"matrix": [[1, 0], [1]]})),
            ["matrix.1: every row of `matrix` must have the same length: row 0 has 2, row 1 has 1"]
        );
        assert_eq!(
            problems::<AudioChannels>(json!({"matrix": []})),
            ["matrix: `matrix` must have 1 to 8 rows (one per output channel), found 0"]
        );
    }

    #[test]
    fn wrong_input_and_format_changes_fail() {
        let mut n = node::<AudioChannels>(json!({"channels": 1}));
        assert_eq!(
            n.process(Data::Int(1), &mut Vec::new())
                .unwrap_err()
                .message,
            "expected audio, got an int"
        );
        n.process(
            chunks(&[0.0, 0.0], 1000, 2, &[1], 0).remove(0),
            &mut Vec::new(),
        )
        .unwrap();
        let e = n
            .process(chunks(&[0.0], 1000, 1, &[1], 0).remove(0), &mut Vec::new())
            .unwrap_err();
        assert!(e.message.contains("changed format"), "{}", e.message);
    }
}
