import sys
from pathlib import Path

# the project's own tests import include/ the way the Astro runtime does
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
