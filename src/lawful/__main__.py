from lawful.cli import run

run()
