"""`python -m services.backbone [--host H] [--port P] [flags]`."""

from services.backbone import ROLE
from umi.service.entry import main

raise SystemExit(main(ROLE))
