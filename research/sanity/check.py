"""Obvious-cases AUC of shipped routers: `router_training.obvious_cases` (kept here for the research commands)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from router_training.obvious_cases import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
