from medviewer.viewer.cli import run

run()
