//! The commands of README.md's "Speech" section, run exactly as written (with the
//! `remotemedia` the README installs first on the `PATH`), in order, in one directory
//! with the repository's `examples/`, and their results checked; then the "Live
//! sessions" block, which streams that section's speech.wav to a session server. Skipped, saying why, when
//! espeak-ng or the VAD model is missing, unless `REMOTEMEDIA_REQUIRE_SPEECH=1`.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{readme_block, readme_commands, repo, run_as_written, run_script, wav_spec, BIN};

fn skip(why: &str) {
    if std::env::var("REMOTEMEDIA_REQUIRE_SPEECH").as_deref() == Ok("1") {
        panic!("{why} (REMOTEMEDIA_REQUIRE_SPEECH=1)");
    }
    eprintln!("skipped: {why}");
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn the_readme_speech_commands_run_as_written() {
    let commands = readme_commands("speech-examples", &["remotemedia", "espeak-ng"]);
    assert_eq!(commands.len(), 4, "{commands:#?}");
    if Command::new("espeak-ng").arg("--version").output().is_err() {
        return skip("espeak-ng is not installed (apt-get install espeak-ng)");
    }
    // The model check is the manifest's own: an invalid manifest says what is missing.
    let check = Command::new(BIN)
        .arg("validate")
        .arg(repo("examples/speech/vad-events.yaml"))
        .output()
        .unwrap();
    if !check.status.success() {
        return skip(&format!(
            "the Silero VAD model is not available: {}",
            String::from_utf8_lossy(&check.stderr).trim()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let stdouts = run_as_written(dir.path(), &commands);
    let (rate, channels, _) = wav_spec(&dir.path().join("speech.wav"));
    assert_eq!((rate, channels), (22_050, 1));

    // The events: three utterances, start / end in turn.
    let events = lines(&stdouts[2]);
    assert_eq!(events.len(), 6, "{}", stdouts[2]);
    let mut spans = Vec::new();
    for pair in events.chunks(2) {
        assert_eq!(pair[0]["type"], "speech_start", "{pair:?}");
        assert_eq!(pair[1]["type"], "speech_end", "{pair:?}");
        let (start, end) = (
            pair[0]["pts_us"].as_i64().unwrap(),
            pair[1]["pts_us"].as_i64().unwrap(),
        );
        assert_eq!(
            pair[1]["duration_ms"].as_f64().unwrap(),
            (end - start) as f64 / 1000.0
        );
        spans.push((start, end));
    }
    // Each sentence lasts 2 to 3.5 s; the silences between them were 1 s and 1.5 s, less
    // the padding and the sentence's own fade.
    for &(start, end) in &spans {
        assert!((2_000_000..3_500_000).contains(&(end - start)), "{spans:?}");
    }
    let gaps = [spans[1].0 - spans[0].1, spans[2].0 - spans[1].1];
    assert!((700_000..=1_100_000).contains(&gaps[0]), "{spans:?}");
    assert!((1_200_000..=1_600_000).contains(&gaps[1]), "{spans:?}");

    // One 16 kHz mono file per utterance, each the audio of its events' span.
    let written = lines(&stdouts[1]);
    assert_eq!(written.len(), 3, "{}", stdouts[1]);
    for (k, w) in written.iter().enumerate() {
        let name = format!("utterance-{k:03}.wav");
        assert_eq!(w["type"], "written");
        assert_eq!(w["path"], name.as_str());
        assert_eq!(w["index"], k as i64);
        assert_eq!(w["pts_us"], spans[k].0, "{w}");
        let frames = (spans[k].1 - spans[k].0) as u64 * 16 / 1000;
        assert_eq!(
            wav_spec(&dir.path().join(&name)),
            (16_000, 1, frames),
            "{name}"
        );
        assert_eq!(w["frames"], frames as i64);
    }
    assert!(!dir.path().join("utterance-003.wav").exists());
    assert!(
        stdouts[3].contains("valid (4 nodes, 3 connections)"),
        "{}",
        stdouts[3]
    );
}

#[test]
fn the_readme_live_session_commands_run_as_written() {
    let speak = readme_commands("speech-examples", &["espeak-ng"]);
    assert_eq!(speak.len(), 1, "{speak:#?}");
    if Command::new("espeak-ng").arg("--version").output().is_err() {
        return skip("espeak-ng is not installed (apt-get install espeak-ng)");
    }
    let check = Command::new(BIN)
        .arg("validate")
        .arg(repo("examples/sessions/pipelines/vad.yaml"))
        .output()
        .unwrap();
    if !check.status.success() {
        return skip(&format!(
            "the Silero VAD model is not available: {}",
            String::from_utf8_lossy(&check.stderr).trim()
        ));
    }
    // The block works on the speech.wav the "Speech" section makes.
    let script = format!("{}\n{}", speak[0], readme_block("session-examples"));
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = run_script(dir.path(), &script, Duration::from_secs(240));
    // JSON lines from `connect`, beside the server's `listening on ADDR`.
    let json: String = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    let lines = lines(&json);
    // Three utterances from the first `connect`, each event with its latency.
    let events: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "output" && l["item"]["type"] == "speech_start")
        .collect();
    assert!(events.len() >= 3, "{stdout}");
    assert!(
        events.iter().all(|e| e["latency_ms"].is_number()),
        "{stdout}"
    );
    // The second wrote the audio back: 22.05 kHz mono, as it came in.
    let (rate, channels, frames) = wav_spec(&dir.path().join("back.wav"));
    assert_eq!((rate, channels), (22_050, 1));
    assert!(frames > 22_050 * 5, "{frames} frames");
    // The load test's report: 50 sessions, none failed.
    let report = lines.last().unwrap();
    assert_eq!(report["sessions"], 50, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["completed"], 50, "{report}");
}
