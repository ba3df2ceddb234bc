"""`python -m services.summarizer [--host H] [--port P] [flags]`."""

from services.summarizer import ROLE
from umi.service.entry import main

raise SystemExit(main(ROLE))
