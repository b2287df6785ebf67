"""python -m mrcnn ...: the command line (see mrcnn.cli.commands)."""
import sys

from mrcnn.cli.commands import main

sys.exit(main())
