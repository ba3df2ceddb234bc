"""`python -m services.caller [--host H] [--port P] [flags]`."""

from services.caller import ROLE
from umi.service.entry import main

raise SystemExit(main(ROLE))
