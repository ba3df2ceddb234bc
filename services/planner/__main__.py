"""`python -m services.planner [--host H] [--port P] [flags]`."""

from services.planner import ROLE
from umi.service.entry import main

raise SystemExit(main(ROLE))
