import sys

from vaegmm.cli import main

sys.exit(main())
