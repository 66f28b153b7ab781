"""ges-bot's benchmark suite (not tests: pytest never collects it). See ``bench/run_all.py``."""
