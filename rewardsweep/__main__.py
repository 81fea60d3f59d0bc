"""``python -m rewardsweep``: the same as the ``rewardsweep`` command."""

import sys

from rewardsweep.cli import main

sys.exit(main())
