"""``python -m pa3 <command>``: see pa3/cli.py."""
from pa3.cli import main

raise SystemExit(main())
