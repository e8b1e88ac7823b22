from viewer.cli import run

run()
