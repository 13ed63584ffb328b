//! From per-frame speech probabilities to utterances, streaming: the decision rules of
//! `VoiceActivity`, apart from any engine or output form. Positions are sample
//! (frame) counts from the start of the stream.
//!
//! - Speech starts after frames at or above `threshold` have lasted `min_speech`
//!   samples with no frame below `neg_threshold` among them; the utterance then begins
//!   `pad` samples before its first such frame (never before the previous one's end).
//! - Speech ends once frames below `neg_threshold` (with none at or above `threshold`
//!   since) have lasted `min_silence` samples, and at least `pad`; the utterance then
//!   ends `pad` samples after the first of them.
//! - At end of stream an open utterance ends where the stream ends (or earlier, at
//!   its padded end, if the silence had begun).

/// Rules of a [`Segmenter`], in samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    /// A frame at or above this probability is speech.
    pub threshold: f32,
    /// A frame below this probability is silence (between the two: unchanged).
    pub neg_threshold: f32,
    /// Speech must last this long before an utterance starts.
    pub min_speech: u64,
    /// Silence must last this long before an utterance ends.
    pub min_silence: u64,
    /// Padding added to both ends of an utterance.
    pub pad: u64,
}

/// What a frame decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An utterance starts at this position (padding included).
    Start(u64),
    /// The utterance from `start` ends at `end` (exclusive, padding included).
    End {
        /// First sample of the utterance.
        start: u64,
        /// One past its last sample.
        end: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Silence,
    /// Speech frames since `start`, not yet long enough.
    Candidate {
        start: u64,
    },
    /// In an utterance that started at `start`; `quiet_since` is where the silence
    /// that may end it began.
    Speech {
        start: u64,
        quiet_since: Option<u64>,
    },
}

/// The streaming decision of one stream.
#[derive(Clone, Debug)]
pub struct Segmenter {
    rules: Rules,
    state: State,
    pos: u64,
    last_end: u64,
}

impl Segmenter {
    /// A stream at position 0 in silence.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            state: State::Silence,
            pos: 0,
            last_end: 0,
        }
    }

    /// Samples decided so far.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Whether an utterance is open.
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// The earliest sample that a future or open utterance may still include: audio
    /// before it can be dropped.
    pub fn keep_from(&self) -> u64 {
        match self.state {
            State::Silence => self.pos.saturating_sub(self.rules.pad).max(self.last_end),
            State::Candidate { start } => start.saturating_sub(self.rules.pad).max(self.last_end),
            State::Speech { start, .. } => start,
        }
    }

    /// In an utterance: one past the last sample known to belong to it (the rest
    /// waits for the silence to be long enough or to end).
    pub fn speech_until(&self) -> Option<u64> {
        match self.state {
            State::Speech { quiet_since, .. } => {
                Some(quiet_since.map_or(self.pos, |q| (q + self.rules.pad).min(self.pos)))
            }
            _ => None,
        }
    }

    /// Takes the probability of the next `len` samples.
    pub fn push(&mut self, prob: f32, len: u64) -> Option<Event> {
        let r = self.rules;
        let (from, to) = (self.pos, self.pos + len);
        self.pos = to;
        match self.state {
            State::Silence | State::Candidate { .. } => {
                let start = match self.state {
                    State::Candidate { start } if prob >= r.neg_threshold => start,
                    State::Silence if prob >= r.threshold => from,
                    _ => {
                        self.state = State::Silence;
                        return None;
                    }
                };
                if to - start >= r.min_speech {
                    let at = start.saturating_sub(r.pad).max(self.last_end);
                    self.state = State::Speech {
                        start: at,
                        quiet_since: None,
                    };
                    Some(Event::Start(at))
                } else {
                    self.state = State::Candidate { start };
                    None
                }
            }
            State::Speech {
                start,
                mut quiet_since,
            } => {
                if prob >= r.threshold {
                    quiet_since = None;
                } else if prob < r.neg_threshold {
                    quiet_since.get_or_insert(from);
                }
                match quiet_since {
                    Some(q) if to - q >= r.min_silence.max(r.pad) => {
                        let end = q + r.pad;
                        self.last_end = end;
                        self.state = State::Silence;
                        Some(Event::End { start, end })
                    }
                    _ => {
                        self.state = State::Speech { start, quiet_since };
                        None
                    }
                }
            }
        }
    }

    /// End of stream: closes an open utterance.
    pub fn finish(&mut self) -> Option<Event> {
        let until = self.speech_until();
        let state = std::mem::replace(&mut self.state, State::Silence);
        match (state, until) {
            (State::Speech { start, .. }, Some(end)) => {
                self.last_end = end;
                Some(Event::End { start, end })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech: 40,
            min_silence: 30,
            pad: 5,
        }
    }

    /// Events of a run of 10-sample frames.
    fn run(probs: &[f32]) -> Vec<Event> {
        let mut s = Segmenter::new(rules());
        let mut ev: Vec<Event> = probs.iter().filter_map(|&p| s.push(p, 10)).collect();
        ev.extend(s.finish());
        ev
    }

    #[test]
    fn an_utterance_is_padded_and_needs_its_minimum_lengths() {
        // Speech from 20 to 80, silence after.
        let mut p = vec![0.0; 2];
        p.extend([0.9; 6]);
        p.extend([0.1; 6]);
        assert_eq!(
            run(&p),
            [Event::Start(15), Event::End { start: 15, end: 85 }]
        );
        // 30 samples of speech are too short.
        assert_eq!(run(&[0.0, 0.9, 0.9, 0.9, 0.0, 0.0]), []);
        // A dip below neg_threshold resets the candidate; one between the thresholds
        // does not.
        assert_eq!(run(&[0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.0]), []);
        assert_eq!(
            run(&[0.9, 0.9, 0.9, 0.4, 0.9, 0.0, 0.0, 0.0, 0.0]),
            [Event::Start(0), Event::End { start: 0, end: 55 }]
        );
    }

    #[test]
    fn short_silences_do_not_split_and_the_stream_end_closes() {
        // 20 samples of silence inside speech: one utterance; open at the end.
        let mut p = vec![0.9; 5];
        p.extend([0.1; 2]);
        p.extend([0.9; 5]);
        assert_eq!(
            run(&p),
            [Event::Start(0), Event::End { start: 0, end: 120 }]
        );
        // Silence of 30 splits; the second start is never before the first's end.
        let mut p = vec![0.9; 5];
        p.extend([0.1; 3]);
        p.extend([0.9; 5]);
        p.extend([0.0; 1]);
        assert_eq!(
            run(&p),
            [
                Event::Start(0),
                Event::End { start: 0, end: 55 },
                Event::Start(75),
                Event::End {
                    start: 75,
                    end: 135
                },
            ]
        );
    }

    #[test]
    fn what_may_be_dropped_and_what_is_decided() {
        let mut s = Segmenter::new(rules());
        s.push(0.0, 10);
        assert_eq!(s.keep_from(), 5);
        s.push(0.9, 10);
        assert_eq!((s.keep_from(), s.speech_until()), (5, None));
        for _ in 0..3 {
            s.push(0.9, 10);
        }
        assert_eq!((s.keep_from(), s.speech_until()), (5, Some(50)));
        s.push(0.0, 10);
        assert_eq!(s.speech_until(), Some(55));
        s.push(0.4, 10);
        assert_eq!(s.speech_until(), Some(55));
        s.push(0.9, 10);
        assert_eq!(s.speech_until(), Some(80));
    }
}
