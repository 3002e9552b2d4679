"""`python -m recorder.cli ...`: the `verbatim` command without its console script."""

import sys

from recorder.cli.main import main

sys.exit(main())
