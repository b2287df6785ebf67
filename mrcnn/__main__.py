"""python -m mrcnn ...: the command line (see mrcnn.cli)."""
import sys

from mrcnn.cli import main

sys.exit(main())
