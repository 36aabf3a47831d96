import sys

from ltbench.cli import main

sys.exit(main())
