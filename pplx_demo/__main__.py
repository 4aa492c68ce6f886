"""`python -m pplx_demo ...`: the command line (see pplx_demo.cli)."""

import sys

from pplx_demo.cli import main

sys.exit(main())
