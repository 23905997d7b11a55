"""Development helpers that the tests and the benchmarks share: speech clips, the WER set, servers as processes,
Wyoming and MQTT clients. Never shipped: no image or wheel includes it."""
