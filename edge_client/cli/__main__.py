"""`python -m edge_client.cli ...`: the same CLI as the `hybrid-router` script."""

import sys

from edge_client.cli import main

sys.exit(main())
