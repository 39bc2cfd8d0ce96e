# The two commands of the README. Everything else is in scripts/.
.PHONY: demo test

demo:  ## set up and run the demo: embedded broker, SQLite, example sites, console
	scripts/venv demo
	.venv/bin/hazwatch demo

test:  ## set up and run ruff, mypy --strict, import contracts and every test
	scripts/test
