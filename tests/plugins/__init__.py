"""Provider plugins for the tests, found through their entry points (see README.md)."""

from pathlib import Path

# The directory to put on the path (sys.path, PYTHONPATH) for pushgate to find them.
PLUGINS_DIR = Path(__file__).parent
