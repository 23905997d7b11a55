"""VAD tuning constants, kept apart from ``vad`` so settings can name them without loading Silero."""

# Chosen on the WER set (bench/bench_wer.py): see docs/benchmarks.md.
MIN_SPEECH_MS = 250
SPEECH_PAD_MS = 400
MIN_GAP_MS = 2000
