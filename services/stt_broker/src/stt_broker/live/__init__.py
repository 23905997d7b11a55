"""Live speech recognition: one transport-independent session core, fed and drained by protocol faces."""
