"""``python -m mechlp.cli``: the same as the ``mechlp`` command."""

import sys

from mechlp.cli.main import main

sys.exit(main())
