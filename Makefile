# The README's commands, as make targets.
.PHONY: up test lint bench
up:
	bash scripts/up.sh
test:
	bash scripts/test.sh
lint:
	uv run ruff check . && uv run mypy
bench:
	uv run python bench/bench_stt.py
