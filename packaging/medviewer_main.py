"""Entry point of the PyInstaller bundle: the same dispatcher as the console script."""

import multiprocessing
import os

if __name__ == "__main__":
    multiprocessing.freeze_support()  # worker processes of a frozen app re-enter here
    if os.environ.get("MEDVIEWER_STARTUP_PROBE"):
        import startup_probe  # packaging/startup_probe.py: quit after the first window

        startup_probe.install()
    from medviewer.viewer.cli import run

    run()
