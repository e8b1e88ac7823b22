"""Package data of medviewer (icons, bundled models); found with importlib.resources."""
