"""The `hybrid-router` console script: the CLI, or one line naming the extra to install when a module is missing."""

from __future__ import annotations

import sys

from edge_client.extras import missing_message


def main(argv: list[str] | None = None) -> int:
    try:
        from edge_client.cli import main as cli_main
    except ImportError as exc:
        print(f"error: {missing_message(exc, 'hybrid-router')}", file=sys.stderr)
        return 2
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
