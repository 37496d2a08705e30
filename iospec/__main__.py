"""``python -m iospec`` is the ``iospec`` command."""

import sys

from iospec.cli import main

sys.exit(main())
